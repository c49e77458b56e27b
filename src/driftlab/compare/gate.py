"""The regression gate: config rules checked against a study's paired comparisons, for every variant.

A rule names suites (the target, every held-out suite, or a list) or one probe metric, and one bound:
min_diff   the difference must be at least this (a required gain; with ci=excludes_zero its CI must be above 0)
max_loss   the difference may not fall below -max_loss (with ci=excludes_zero: only when its CI is entirely below 0)
max_rise   the difference may not exceed +max_rise (e.g. drift.kl, shortcuts.skipped_computation)
Held-out suites at their floor are skipped by loss rules: a floor suite cannot show a loss (the report says so).
Zero-shot results only (`<suite>`, not `<suite>@<strategy>`), so a rule means one number per suite.
"""

from __future__ import annotations

from driftlab.config import GateRule
from driftlab.schema import GateCheck, Study


def check_gate(study: Study, rules: list[GateRule]) -> list[GateCheck]:
    """One check per (variant, rule, checked row)."""
    roles = study.roles()
    results: list[GateCheck] = []
    for variant in study.variant_names():
        for i, rule in enumerate(rules):
            for subject, row in _rows(study, variant, rule, roles):
                at_floor = rule.max_loss is not None and getattr(row, "floor", False) and roles.get(subject) != "target"
                passed, why = (True, "skipped: at floor, a loss cannot be shown") if at_floor else _check(rule, row)
                results.append(GateCheck(variant=variant, rule=i, subject=subject, diff=row.diff, ci95=row.ci95,
                                         passed=passed, why=why))
            if not any(r.variant == variant and r.rule == i for r in results):
                results.append(GateCheck(variant=variant, rule=i, subject=_describe(rule), diff=None, ci95=None,
                                         passed=False, why="nothing in this study matches the rule"))
    return results


def _rows(study: Study, variant: str, rule: GateRule, roles: dict):
    if rule.probe:
        probe, metric = rule.probe.split(".", 1)
        for c in study.probes.comparisons if study.probes else []:
            if c.variant == variant and c.probe == probe and c.metric == metric:
                yield rule.probe, c
        return
    for c in study.rows(variant):
        if not c.key.zero_shot:
            continue
        wanted = roles.get(c.suite) == rule.suites if isinstance(rule.suites, str) else c.suite in rule.suites
        if wanted:
            yield c.suite, c


def _check(rule: GateRule, row) -> tuple[bool, str]:
    diff, (lo, hi) = row.diff, row.ci95
    strict = rule.ci == "excludes_zero"
    if rule.min_diff is not None:
        if diff < rule.min_diff:
            return False, f"diff {diff:+.3f} < required {rule.min_diff:+.3f}"
        if strict and lo <= 0:
            return False, f"CI [{lo:+.3f}, {hi:+.3f}] does not exclude 0"
        return True, f"diff {diff:+.3f} ≥ {rule.min_diff:+.3f}"
    if rule.max_loss is not None:
        if diff < -rule.max_loss and (not strict or hi < 0):
            return False, f"diff {diff:+.3f} below -{rule.max_loss:.3f}" + (" with CI below 0" if strict else "")
        return True, f"diff {diff:+.3f} within -{rule.max_loss:.3f}"
    if diff > rule.max_rise and (not strict or lo > 0):
        return False, f"diff {diff:+.3f} above +{rule.max_rise:.3f}" + (" with CI above 0" if strict else "")
    return True, f"diff {diff:+.3f} within +{rule.max_rise:.3f}"


def _describe(rule: GateRule) -> str:
    return rule.probe or (rule.suites if isinstance(rule.suites, str) else ",".join(rule.suites))
