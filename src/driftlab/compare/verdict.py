"""The verdict: one word per paired comparison, and per variant what it gained, what it lost and whether it passed
the gate — next to the statistics it reads (paired.py, stats.py, gate.py); the report only prints it."""

from __future__ import annotations

from driftlab.schema import Comparison, Study

ALPHA = 0.05


def verdict(row: Comparison, role: str) -> str:
    """'gained'/'lost' need both the bootstrap CI to exclude zero and the exact McNemar test to reject (the
    percentile bootstrap is optimistic when only a handful of items flipped). A floor suite cannot show a loss, so
    it gets no verdict beyond that."""
    lo, hi = row.ci95
    if row.floor and role != "target":
        return "at floor (base ≈ chance): not interpretable"
    if lo > 0 and row.mcnemar_p < ALPHA:
        return "gained"
    if hi < 0 and row.mcnemar_p < ALPHA:
        return "lost"
    return "no significant change"


def variant_summary(study: Study) -> list[dict]:
    """Per variant: the result keys (suite × strategy) it gained and lost on, and its gate result."""
    roles = study.roles()
    out = []
    for name in study.variant_names():
        rows = study.rows(name)
        failed = [c for c in (study.gate.checks if study.gate else []) if c.variant == name and not c.passed]
        out.append({"variant": name,
                    "gained": [r.suite for r in rows if verdict(r, roles[r.suite]) == "gained"],
                    "lost": [r.suite for r in rows if verdict(r, roles[r.suite]) == "lost"],
                    "gate": ("no rules" if study.gate is None else f"FAILED ({len(failed)} checks)" if failed
                             else "passed")})
    return out
