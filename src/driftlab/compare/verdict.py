"""The verdict: one phrase per paired comparison, and per variant what it gained, what it lost, where it kept within
the margin and where the data cannot tell — next to the statistics it reads (paired.py, stats.py, gate.py); the
report only prints it.

Per row (a suite under one strategy, one variant against the base), in this order:
gained                     CI above 0 and the corrected McNemar p below alpha
lost                       CI below 0 and the corrected McNemar p below alpha ("lost, within the margin" when the
                           loss is also certified smaller than the margin)
at floor                   the base model is not above chance: nothing to lose (target and held-out alike; a floor
                           suite can still show a gain or a significant loss, above)
then, for a held-out row (a cost):
no loss beyond the margin  non-inferiority: the CI's lower bound lies above -margin, and so does the exact bound on
                           the loss (compare.stats.loss_bound: the bootstrap alone certifies anything when nothing
                           flipped)
cannot tell                none of the above: the items cannot tell a loss of `margin` from none; the row says how
                           small a difference they can detect (mde) and how many items would certify the margin
and for a target row (what was trained for): no significant change.
"""

from __future__ import annotations

import math

from driftlab.schema import Comparison, Study

GAINED, LOST, FLOOR, WITHIN, CANNOT_TELL = ("gained", "lost", "at floor (base ≈ chance): no loss to show",
                                            "no loss beyond the margin", "cannot tell")
LOST_WITHIN, NO_CHANGE = "lost, within the margin", "no significant change"


def certified(row, margin: float) -> bool:
    """Non-inferiority at `margin`: the bootstrap CI's lower bound and the exact loss bound (suite rows have one;
    a probe metric's row does not) both above -margin."""
    bound = getattr(row, "loss_bound", None)
    return row.ci95[0] > -margin and (bound is None or bound < margin)



def verdict(row: Comparison, role: str = "heldout") -> str:
    """`role`: 'target' or 'heldout' (a cost; also what a comparison outside a study is read as). Alpha and margin
    are the row's own (compare config)."""
    lo, hi = row.ci95
    p = row.p_adj if row.p_adj is not None else row.mcnemar_p
    if lo > 0 and p < row.alpha:
        return GAINED
    if hi < 0 and p < row.alpha:
        return LOST_WITHIN if certified(row, row.margin) else LOST
    if row.floor:
        return FLOOR
    if role == "target":
        return NO_CHANGE
    if certified(row, row.margin):
        return WITHIN
    return CANNOT_TELL


WORSE, BETTER, DRIFTED, TOO_FEW, NOT_MEASURED = "worse", "better", "moved", "too few items", "n/a"
MIN_PROBE_ITEMS = 10  # a chain metric pairs only the items with a chain on both sides: below this, no reading
FROM_BASE = {("drift", "kl"), ("drift", "nll_tuned")}  # measured on the base's own text: every fine-tune moves


def probe_verdict(row, better: str) -> str:
    """A probe metric's paired change (a ProbeComparison), read against the way the metric is better: WORSE or
    BETTER when the bootstrap CI excludes 0, else NO_CHANGE. A metric that is better at neither end, or that favours
    the base by construction (FROM_BASE), says MOVED when its CI excludes 0. Fewer than MIN_PROBE_ITEMS paired items:
    TOO_FEW; a CI that is not a number: NOT_MEASURED. No margin and no correction across metrics: a finding here is a
    lead to read in the probe table, not a certified cost."""
    lo, hi = row.ci95
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_MEASURED
    if row.n < MIN_PROBE_ITEMS:
        return TOO_FEW
    if lo <= 0 <= hi:
        return NO_CHANGE
    if better not in ("higher", "lower") or (row.probe, row.metric) in FROM_BASE:
        return DRIFTED
    return BETTER if (lo > 0) == (better == "higher") else WORSE


def checks_text(n: int) -> str:
    return f"{n} check{'s' * (n != 1)}"


def variant_summary(study: Study) -> list[dict]:
    """Per variant: the result keys (suite × strategy) it gained on; among the held-out rows (the costs) those it
    lost, those certified within the margin and those that cannot tell; and its gate result."""
    return _summaries(study, {name: study.rows(name) for name in study.variant_names()})


def start_summary(study: Study) -> list[dict]:
    """variant_summary for each variant that continued another (train.init_from), against that one: what RL
    after SFT gained and cost relative to the SFT it started from. `against` names the start; no gate."""
    by_variant: dict[str, list] = {}
    for r in study.from_start:
        by_variant.setdefault(r.variant, []).append(r)
    return [{**v, "against": by_variant[v["variant"]][0].against, "gate": "n/a"}
            for v in _summaries(study, by_variant)]


def _summaries(study: Study, by_variant: dict[str, list]) -> list[dict]:
    roles = study.roles()
    out = []
    for name, rows in by_variant.items():
        costs = [r for r in rows if roles[r.suite] == "heldout"]
        failed = study.failed_checks(name)
        out.append({"variant": name,
                    "gained": [r.suite for r in rows if verdict(r, roles[r.suite]) == GAINED],
                    "lost": [r.suite + (" (within the margin)" if verdict(r, roles[r.suite]) == LOST_WITHIN else "")
                             for r in rows if verdict(r, roles[r.suite]) in (LOST, LOST_WITHIN)],
                    "within": [r.suite for r in costs if verdict(r) == WITHIN],
                    "cannot_tell": [r for r in costs if verdict(r) == CANNOT_TELL],
                    "margin": rows[0].margin if rows else None,
                    "gate": ("no rules" if study.gate is None else f"FAILED ({checks_text(len(failed))})" if failed
                             else "passed")})
    return out


def cannot_tell_text(row: Comparison) -> str:
    """`capitals` (mde 11 pts; ~390 items would certify −5)."""
    if row.mde is None and row.n_to_certify is None:
        return f"{row.suite} (power not computed)"  # a study.json written before power was
    mde = "none detectable" if row.mde is None else f"mde {100 * row.mde:.0f} pts"
    need = (f"; ~{row.n_to_certify} items would certify −{100 * row.margin:.0f}" if row.n_to_certify else
            f"; the observed {100 * row.diff:+.1f} already exceeds −{100 * row.margin:.0f}")
    return f"{row.suite} ({mde}{need})"


def recommend(study: Study) -> dict:
    """Which variant to keep: the largest target gain (zero-shot, else the target's first strategy) among variants
    that pass the gate (every variant, without rules) and lost no held-out row (a loss certified within the margin
    is not a loss here). A runner-up whose gain lies inside the best one's CI is a tie (the two
    are not tested against each other); when no variant qualifies, that is the answer, with why.
    Returns {"variant": name | None, "tied": [names], "text": one sentence}."""
    roles = study.roles()
    targets = [s for s in study.suites if s.role == "target"]
    target = next((s.name for s in targets if s.key.zero_shot), targets[0].name if targets else None)
    rows = {r.variant: r for r in study.comparisons if r.suite == target}
    if target is None or not rows:
        return {"variant": None, "tied": [], "text": "none: no variant was compared on the target"}

    def gain(name: str) -> str:
        r = rows[name]
        return f"{name} {100 * r.diff:+.1f} [{100 * r.ci95[0]:+.0f}, {100 * r.ci95[1]:+.0f}]"

    gained = [n for n in rows if verdict(rows[n], roles[target]) == GAINED]
    failed = {n: [c.subject for c in study.failed_checks(n)] for n in rows}
    lost = {n: [r.suite for r in study.rows(n) if roles[r.suite] == "heldout" and verdict(r) == LOST] for n in rows}
    why_not = {n: (f"fails the gate on {', '.join(failed[n])}" if failed[n] else
                   f"lost {', '.join(lost[n])}" if lost[n] else None) for n in rows}
    ok = sorted((n for n in gained if why_not[n] is None), key=lambda n: -rows[n].diff)
    if not ok:
        if not gained:
            return {"variant": None, "tied": [], "text": f"none: no variant gained on the target `{target}`"}
        reasons = "; ".join(f"{gain(n)} {why_not[n]}" for n in sorted(gained, key=lambda n: -rows[n].diff))
        return {"variant": None, "tied": [],
                "text": f"none qualifies: of the variants that gained on `{target}`, {reasons}"}
    best = ok[0]
    tied = [n for n in ok[1:] if rows[n].diff >= rows[best].ci95[0]]
    among = "that pass the gate and lost no held-out suite" if study.gate else "that lost no held-out suite (no gate)"
    text = f"{best}: the largest `{target}` gain ({gain(best).removeprefix(best + ' ')}) among variants {among}"
    if tied:
        text += (f"; tied with {', '.join(gain(n) for n in tied)} (inside its CI; the variants are not tested "
                 "against each other)")
    return {"variant": best, "tied": tied, "text": text}
