"""The regression gate: config rules checked against a study's paired comparisons, for every variant.

A rule names suites (the target, every held-out suite, or a list) or one probe metric, and one bound:
min_diff   the difference must be at least this (a required gain; with ci=excludes_zero its CI must be above 0)
max_loss   non-inferiority: with ci=excludes_zero the data must show that any loss is smaller than max_loss (the
           CI's lower bound above -max_loss); a CI reaching below it fails as "cannot certify", with the number of
           items that would. With ci=any only the point estimate must stay above -max_loss.
max_rise   the difference may not exceed +max_rise (e.g. drift.kl, shortcuts.skipped_computation); with
           ci=excludes_zero only a rise whose CI lies above 0 counts
Suites at their floor are skipped by loss rules: a floor suite has no loss to show (compare/verdict.py).
Zero-shot results only (`<suite>`, not `<suite>@<strategy>`), so a rule means one number per suite.
"""

from __future__ import annotations

from driftlab.compare.stats import items_to_certify
from driftlab.compare.verdict import certified
from driftlab.config import GateRule
from driftlab.schema import GateCheck, Study


def check_gate(study: Study, rules: list[GateRule]) -> list[GateCheck]:
    """One check per (variant, rule, checked row)."""
    roles = study.roles()
    results: list[GateCheck] = []
    for variant in study.variant_names():
        for i, rule in enumerate(rules):
            for subject, row in _rows(study, variant, rule, roles):
                at_floor = (rule.max_loss is not None and getattr(row, "floor", False)
                            and not _significant_loss(row))  # a floor suite has no loss to show, unless it did
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


def _significant_loss(row) -> bool:
    p = getattr(row, "p_adj", None)
    return row.ci95[1] < 0 and p is not None and p < getattr(row, "alpha", 0.05)


def _units(row):
    """How a check states its numbers: a suite row in percentage points (as compare, the report and the terminal
    do), a probe metric in its own unit. Returns (format a number, the unit's suffix)."""
    if hasattr(row, "right_to_wrong"):
        return (lambda x, sign=True: f"{100 * x:{'+' if sign else ''}.1f}"), " pts"
    return (lambda x, sign=True: f"{x:{'+' if sign else ''}.3f}"), ""


def _check(rule: GateRule, row) -> tuple[bool, str]:
    diff, (lo, hi) = row.diff, row.ci95
    strict = rule.ci == "excludes_zero"
    v, u = _units(row)
    if rule.min_diff is not None:
        if diff < rule.min_diff:
            return False, f"diff {v(diff)} < required {v(rule.min_diff)}{u}"
        if strict and lo <= 0:
            return False, f"CI [{v(lo)}, {v(hi)}] does not exclude 0"
        p = getattr(row, "p_adj", None)  # a suite row's corrected McNemar p, as the verdicts read it
        if strict and p is not None and p >= getattr(row, "alpha", 0.05):
            return False, f"corrected McNemar p {p:.3g} is not below {row.alpha}"
        return True, f"diff {v(diff)} ≥ {v(rule.min_diff)}{u}"
    if rule.max_loss is not None:
        margin = rule.max_loss
        if not strict:
            if diff < -margin:  # say whether the data show the loss, or cannot tell it from none
                shown = (f"its CI [{v(lo)}, {v(hi)}] lies below 0: a loss" if hi < 0 else
                         f"its CI [{v(lo)}, {v(hi)}] reaches 0: the data cannot tell this loss from none")
                return False, f"diff {v(diff)} below -{v(margin, False)}{u} (point estimate; {shown})"
            return True, f"diff {v(diff)} not below -{v(margin, False)}{u} (point estimate; its CI is not checked)"
        if certified(row, margin):
            return True, (f"a loss beyond -{v(margin, False)}{u} is excluded: CI lower bound {v(lo)} > "
                          f"-{v(margin, False)}")
        if hi < 0 and diff < -margin:
            return False, f"lost: diff {v(diff)}, CI [{v(lo)}, {v(hi)}] below 0 and below -{v(margin, False)}{u}"
        need = ""
        if hasattr(row, "right_to_wrong"):  # a suite row (a probe metric has no flips to count)
            items = items_to_certify(row.n, row.right_to_wrong, row.wrong_to_right, margin, row.power,
                                     row.confidence)
            need = ("; at the observed difference no number of items would" if items is None else
                    f"; ~{items} items would certify it at the observed difference")
            if lo > -margin:  # the bootstrap alone would have certified it: too few flips to trust it
                need += f"; exact bound on the loss {v(row.loss_bound, False)}{u}"
        return False, (f"cannot certify a loss smaller than {v(margin, False)}{u}: CI [{v(lo)}, {v(hi)}] reaches "
                       f"below -{v(margin, False)} (n {row.n}{need})")
    if diff > rule.max_rise and (not strict or lo > 0):
        return False, f"diff {v(diff)} above +{v(rule.max_rise, False)}{u}" + (" with CI above 0" if strict else "")
    return True, f"diff {v(diff)} within +{v(rule.max_rise, False)}{u}"


def _describe(rule: GateRule) -> str:
    return rule.probe or (rule.suites if isinstance(rule.suites, str) else ",".join(rule.suites))
