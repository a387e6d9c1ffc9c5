"""Small things the output must get right: whole class names, small values readable, FIFO's summary."""

from __future__ import annotations

from analysis.evaluate import Evaluation
from trainables.data.images import DATASETS

CLASSES = list(DATASETS["fashion_mnist"].classes)


def test_confusion_matrix_keeps_whole_class_names():
    n = len(CLASSES)
    diagonal = [[int(i == j) for j in range(n)] for i in range(n)]
    evaluation = Evaluation(trial_id="t", checkpoint="checkpoint_000001", epoch=1, split="test", images=n,
                            accuracy=1.0, loss=0.0, confusion=diagonal, classes=CLASSES, stored_val_acc=None)
    text = evaluation.markdown()
    assert "| T-shirt/top |" in text and "T-shirt/top | Trouser" in text


def test_lora_view_prints_its_table_without_library_warnings(capsys):
    import warnings

    from search.run import main

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["--space", "lora", "--profile", "smoke", "--view"]) == 0
    assert "setting=qkvo16" in capsys.readouterr().out
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []


def test_summary_keeps_the_digits_of_small_config_values():
    from search.summary import readable

    assert readable(1.2e-05) == "1.2e-05"  # weight_decay, not 0.0000
    assert readable(0.72021) == "0.7202" and readable(0.0) == "0.0000"
