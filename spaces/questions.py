"""A study's questions: named comparisons between two arms of its grid, each with the metric and the
epoch it is read at, the direction the reference study found and, for an equivalence, the margin.

A Space declares its questions once (`Space.questions`); a user adds more with `--question`, in the
text form `parse_question` reads. analysis/questions.py answers them from the stored curves; the
schedulers keep every arm of a question to the budget (search/tuner.py), so early stopping never
cuts the evidence a question needs.

An arm is a set of config values (`num_blocks=7,skip=false`): the configurations of the search that
have those values. An arm that leaves a grid axis open averages its configurations seed by seed.
`best` is an arm too: the best configuration at the epoch read, the other arm and baselines aside.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from cli import UsageError
from trainables.config import ConfigError, parse_value

LESS, MORE, SAME = "<", ">", "~"
RELATIONS = {LESS: "below", MORE: "above", SAME: "within the margin of"}
BEST = "best"
"""An arm: the best configuration (by the question's metric and the space's mode) at the epoch read."""

Arm = dict[str, Any] | str
QUESTION_FORM = "NAME: KEY=VALUE,... (< | > | ~) KEY=VALUE,... [; metric=M] [; epoch=E] [; margin=X]"


@dataclass(frozen=True)
class Question:
    name: str
    a: Arm
    relation: str
    """`<`: a's metric below b's; `>`: above; `~`: equivalent within `margin` (two one-sided tests)."""
    b: Arm
    metric: str = ""
    """The metric compared; empty: the space's metric."""
    epoch: int | None = None
    """The epoch both arms are read at; None: the search's budget."""
    margin: float | None = None
    """`~` only: differences within ±margin count as the same."""
    reference: str = ""
    """What the reference study found, and where: "holds (He et al. 2016, Fig. 1)"."""

    def arms(self) -> list[Arm]:
        return [self.a, self.b]

    def claim(self, metric: str) -> str:
        """The question as one line: "num_blocks=7, skip=False < num_blocks=5, skip=False on val_acc"."""
        margin = f" ±{self.margin:g}" if self.relation == SAME else ""
        return f"{arm_label(self.a)} {self.relation} {arm_label(self.b)} on {self.metric or metric}{margin}"


def arm_label(arm: Arm) -> str:
    return arm if isinstance(arm, str) else ", ".join(f"{k}={v}" for k, v in arm.items())


def matches(config: dict[str, Any], arm: dict[str, Any]) -> bool:
    """Whether a configuration belongs to an arm: every value the arm names is the config's."""
    return all(k in config and config[k] == v for k, v in arm.items())


def grid_cells(grid: dict[str, list], baselines: tuple[dict, ...], config: dict[str, Any]) -> list[dict]:
    """Every configuration a grid search runs, as {key: value} over the fixed config, the grid axes
    (seeds aside) and the baselines' keys: the grid's product, then each baseline over the axes it
    leaves open."""
    axes = {k: v for k, v in grid.items() if k != "seed"}
    product = [{**config, **dict(zip(axes, values, strict=True))}
               for values in itertools.product(*axes.values())]
    found = list(product)
    for baseline in baselines:
        for cell in product:
            merged = {**cell, **baseline}
            if merged not in found:
                found.append(merged)
    return found


def _arm(space_config: type, text: str, where: str) -> Arm:
    text = text.strip()
    if text == BEST:
        return BEST
    arm: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"{where}: an arm is KEY=VALUE,... or best, got '{text}'")
        try:
            arm[key.strip()] = parse_value(space_config, key.strip(), value.strip())
        except ConfigError as err:
            raise UsageError(f"{where}: {err}") from None
    return arm


def parse_question(text: str, config_cls: type) -> Question:
    """`NAME: A < B [; metric=M] [; epoch=E] [; margin=X]` -> Question; UsageError in one line."""
    where = f"--question '{text}'"
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"{where}: expected {QUESTION_FORM}")
    claim, *options = rest.split(";")
    found = [(claim.index(r), r) for r in RELATIONS if r in claim]
    if len(found) != 1:
        raise UsageError(f"{where}: expected one of <, >, ~ between the two arms ({QUESTION_FORM})")
    at, relation = found[0]
    fields: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in ("metric", "epoch", "margin") or not value:
            raise UsageError(f"{where}: options are metric=NAME, epoch=N and margin=X, "
                             f"got '{option.strip()}'")
        if key in fields:
            raise UsageError(f"{where}: {key} given twice")
        fields[key] = value
    try:
        epoch = int(fields["epoch"]) if "epoch" in fields else None
        margin = float(fields["margin"]) if "margin" in fields else None
    except ValueError:
        raise UsageError(f"{where}: epoch must be a whole number and margin a number") from None
    return Question(name.strip(), _arm(config_cls, claim[:at], where), relation,
                    _arm(config_cls, claim[at + 1:], where), fields.get("metric", ""), epoch, margin)


def check_question(q: Question, cells: list[dict], metrics: tuple[str, ...], epochs: int) -> None:
    """UsageError unless each arm names configurations of the search, the metric is one the trials
    report, the epoch is within the budget and a margin is given exactly when the relation is `~`."""
    where = f"question '{q.name}'"
    if len(cells) < 2:
        raise UsageError(f"{where}: this search runs one configuration; a question compares two")
    if q.relation not in RELATIONS:
        raise UsageError(f"{where}: relation must be one of {', '.join(RELATIONS)}, got '{q.relation}'")
    if q.metric and q.metric not in metrics:
        raise UsageError(f"{where}: unknown metric '{q.metric}' (known: {', '.join(metrics)})")
    if q.epoch is not None and not 1 <= q.epoch <= epochs:
        raise UsageError(f"{where}: epoch must be in 1..{epochs} (the budget), got {q.epoch}")
    if q.relation == SAME:
        if q.margin is None or not math.isfinite(q.margin) or q.margin <= 0:
            raise UsageError(f"{where}: `~` needs a finite margin > 0, got {q.margin}")
    elif q.margin is not None:
        raise UsageError(f"{where}: a margin belongs to `~` (equivalence) only")
    if q.a == BEST and q.b == BEST:
        raise UsageError(f"{where}: at most one arm can be best")
    members = []
    for arm in q.arms():
        if arm == BEST:
            continue
        unknown = sorted(set(arm) - set().union(*cells))
        if unknown:
            raise UsageError(f"{where}: {', '.join(unknown)} is not a key of this search's configurations")
        inside = [c for c in cells if matches(c, arm)]
        if not inside:
            raise UsageError(f"{where}: {arm_label(arm)} is outside this search's grid")
        members.append(inside)
    if len(members) == 2 and members[0] == members[1]:
        raise UsageError(f"{where}: both arms name the same configurations")


def in_grid(q: Question, cells: list[dict]) -> bool:
    """Whether every arm names some configuration of the search (a declared question whose arm a
    `--set` took out of the grid is not asked)."""
    return all(arm == BEST or any(matches(c, arm) for c in cells) for arm in q.arms())


def study_questions(declared: tuple[Question, ...], added: list[Question], cells: list[dict],
                    metrics: tuple[str, ...], epochs: int) -> list[Question]:
    """The questions a search answers: the space's that its grid holds, then the user's, each checked;
    UsageError on a bad one or on two with the same name."""
    asked = [q for q in declared if in_grid(q, cells)]
    for q in added:
        check_question(q, cells, metrics, epochs)
    names = [q.name for q in [*asked, *added]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two questions are named '{twice[0]}'; give each its own name")
    return [*asked, *added]


def kept_arms(questions: list[Question], cells: list[dict]) -> tuple[dict, ...]:
    """The configurations the questions need to the budget, as arms a scheduler never stops: each
    named arm, and every configuration for a `best` arm (any of them may turn out best)."""
    kept: list[dict] = []
    for q in questions:
        for arm in q.arms():
            for found in (cells if arm == BEST else [arm]):
                if found not in kept:
                    kept.append(dict(found))
    return tuple(kept)
