"""The shape of what a study writes: study.json as typed models (written and read through them, so its shape lives
here and not only in the code that writes it), and the key of one suite × strategy result.

Nested records that other stages own and describe (a train summary, an eval's metrics, the data report, a probe
summary) stay mappings here; everything the report, the gate and the CLI read by name is a field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ResultKey:
    """One suite under one prompting strategy. Written `<suite>` for zero-shot (and every log-likelihood suite),
    `<suite>@<strategy>` otherwise: the name of its per-item JSONL and its key in eval.json and study.json."""
    suite: str
    strategy: str = "zero_shot"

    def __str__(self) -> str:
        return self.suite if self.strategy == "zero_shot" else f"{self.suite}@{self.strategy}"

    @classmethod
    def parse(cls, key: str) -> ResultKey:
        suite, _, strategy = key.partition("@")
        return cls(suite, strategy or "zero_shot")

    @property
    def zero_shot(self) -> bool:
        return self.strategy == "zero_shot"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(Record):
    name: str
    path: str
    fingerprint: str


class VariantResult(Record):
    name: str
    method: str
    train: dict[str, Any]  # train.json: the training summary (train/sft.py)
    eval: dict[str, dict[str, Any]]  # result key -> metrics (eval/run.py suite_metrics)
    trajectory: dict[str, Any] | None = None  # train.probe_every: the points over training (probes/trajectory.py)


class SuiteResult(Record):
    """One result key as the base model scored it."""
    name: str  # a ResultKey
    role: Literal["target", "heldout"]
    n: int
    strategy: str
    chance: float
    floor: bool  # base accuracy not significantly above chance + margin (compare.stats.at_floor)
    base_metrics: dict[str, Any]
    family: str | None = None  # a multi-step family (SuiteConfig.terms): its suites form one curve
    terms: int | None = None

    @property
    def key(self) -> ResultKey:
        return ResultKey.parse(self.name)


class Comparison(Record):
    """One variant against the base on one result key, paired by item (compare/paired.py compare_suite). In
    Study.from_start, against the variant it continued (train.init_from): `against` names it, base_* are its."""
    variant: str
    suite: str  # a ResultKey
    against: str = "base"
    n: int
    base_acc: float
    tuned_acc: float
    diff: float
    ci95: list[float]  # at `confidence` (named for the default)
    mcnemar_p: float
    right_to_wrong: int
    wrong_to_right: int
    chance: float
    floor: bool
    n_bootstrap: int
    confidence: float
    p_adj: float | None = None  # McNemar p corrected across the variant's rows (`correction`); verdicts read it
    correction: str | None = None  # bh | holm | bonferroni | none
    mde: float | None = None  # smallest difference one test detects with `power` (None: none, or not computed)
    loss_bound: float | None = None  # exact (Clopper-Pearson) bound on the loss; certifying a margin needs it below
    margin: float = 0.05  # the non-inferiority margin of the cost verdict
    alpha: float = 0.05  # the level 'gained' and 'lost' test the corrected p against
    power: float = 0.8  # of `mde` and `n_to_certify`
    n_to_certify: int | None = None  # items that would certify "no loss beyond the margin" at the observed diff
    p_bh: float | None = Field(None, exclude=True)  # study.json files written before `p_adj`: read, not written

    @model_validator(mode="after")
    def _legacy_p(self):
        if self.p_adj is None and self.p_bh is not None:
            self.p_adj, self.correction = self.p_bh, "bh"
        return self

    @property
    def key(self) -> ResultKey:
        return ResultKey.parse(self.suite)


class ProbeComparison(Record):
    variant: str
    probe: str
    metric: str
    n: int
    base: float
    tuned: float
    diff: float
    ci95: list[float]


class ProbeResults(Record):
    base: dict[str, Any]  # probes.json of the base model (probes/run.py)
    variants: dict[str, dict[str, Any]]
    comparisons: list[ProbeComparison]


class SweepPoint(Record):
    variant: str
    alpha: float
    target_gain: float
    target_ci: list[float] | None = None  # None in sweep.json files written before CIs were added
    heldout_change: float
    heldout_ci: list[float] | None = None
    suites: dict[str, float]
    frontier: bool = False


class SweepResult(Record):
    scales: list[float]
    limit: int | None
    items: dict[str, int]
    n_bootstrap: int
    confidence: float
    points: list[SweepPoint]


class GateCheck(Record):
    variant: str
    rule: int
    subject: str
    diff: float | None
    ci95: list[float] | None
    passed: bool
    why: str


class GateResult(Record):
    passed: bool
    rules: list[dict[str, Any]]
    checks: list[GateCheck]


class Study(Record):
    schema_version: int = SCHEMA_VERSION
    name: str
    seed: int
    run_dir: str
    model: ModelInfo
    variants: list[VariantResult]
    suites: list[SuiteResult]
    comparisons: list[Comparison]
    data: dict[str, Any]  # data.json's report (data/build.py)
    timings_s: dict[str, float]
    probes: ProbeResults | None = None
    sweep: SweepResult | None = None
    gate: GateResult | None = None
    from_start: list[Comparison] = Field(default_factory=list)  # a continued variant against where it started

    def roles(self) -> dict[str, str]:
        """Result key -> 'target' | 'heldout'."""
        return {s.name: s.role for s in self.suites}

    def rows(self, variant: str) -> list[Comparison]:
        return [r for r in self.comparisons if r.variant == variant]

    def failed_checks(self, variant: str) -> list[GateCheck]:
        """The gate checks this variant failed (none without gate rules)."""
        return [c for c in (self.gate.checks if self.gate else []) if c.variant == variant and not c.passed]

    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def write(self, path: Path) -> None:
        from driftlab.runs import write_json

        write_json(path, self.model_dump())  # python mode: write_json's own encoder (NaN stays NaN, numpy scalars)


def load_study(run_dir: Path) -> Study:
    """study.json of a study run dir, validated; one clear error when it is not one."""
    from pydantic import ValidationError

    from driftlab.errors import DataError

    path = Path(run_dir) / "study.json"
    if not path.exists():
        raise DataError(f"{run_dir}: not a study run dir (no study.json)")
    try:
        return Study.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else {"loc": (), "msg": str(err)}
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(f"{path}: not a driftlab study.json ({where or 'file'}: {first['msg']})") from None
