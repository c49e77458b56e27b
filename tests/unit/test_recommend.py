"""Which variant the study recommends, on constructed studies: the largest target gain among variants that pass the
gate and lost nothing; a tie inside the CI said as one; 'none qualifies' with why."""

from driftlab.compare.verdict import recommend
from driftlab.schema import Study


def _row(variant, suite, diff, ci95, p=0.001):
    return {"variant": variant, "suite": suite, "n": 100, "base_acc": 0.2, "tuned_acc": 0.2 + diff, "diff": diff,
            "ci95": ci95, "mcnemar_p": p, "p_adj": p, "right_to_wrong": 0, "wrong_to_right": 0, "chance": 0.05,
            "floor": False, "n_bootstrap": 200, "confidence": 0.95}


def _study(rows, failed=(), gate=True):
    names = sorted({r["variant"] for r in rows})
    suites = [{"name": n, "role": role, "n": 100, "strategy": "zero_shot", "chance": 0.05, "floor": False,
               "base_metrics": {"accuracy": 0.2}} for n, role in (("arith", "target"), ("held", "heldout"))]
    checks = [{"variant": v, "rule": 0, "subject": "held", "diff": -0.1, "ci95": [-0.2, -0.01], "passed": v not in
               failed, "why": ""} for v in names]
    return Study.model_validate({
        "name": "t", "seed": 0, "run_dir": "r", "model": {"name": "m", "path": "m", "fingerprint": "f"},
        "variants": [{"name": n, "method": "lora", "train": {}, "eval": {}} for n in names], "suites": suites,
        "comparisons": rows, "data": {}, "timings_s": {},
        "gate": {"passed": not failed, "rules": [{}], "checks": checks} if gate else None})


def test_the_largest_gain_among_those_that_pass_and_lost_nothing():
    rows = [_row("a", "arith", 0.30, [0.2, 0.4]), _row("a", "held", -0.2, [-0.3, -0.1]),  # a lost `held`
            _row("b", "arith", 0.25, [0.15, 0.35]), _row("b", "held", 0.0, [-0.02, 0.02], p=1.0),
            _row("c", "arith", 0.05, [0.01, 0.09]), _row("c", "held", 0.0, [-0.02, 0.02], p=1.0)]
    rec = recommend(_study(rows))
    assert rec["variant"] == "b" and rec["tied"] == [] and "+25.0 [+15, +35]" in rec["text"]
    rows[4] = _row("c", "arith", 0.20, [0.1, 0.3])  # inside b's CI: a tie, said as one
    rec = recommend(_study(rows))
    assert rec["variant"] == "b" and rec["tied"] == ["c"] and "tied with c +20.0" in rec["text"]


def test_none_qualifies_is_said_with_why():
    rows = [_row("a", "arith", 0.30, [0.2, 0.4]), _row("a", "held", 0.0, [-0.02, 0.02], p=1.0),
            _row("b", "arith", 0.02, [-0.05, 0.09], p=0.6), _row("b", "held", 0.0, [-0.02, 0.02], p=1.0)]
    rec = recommend(_study(rows, failed=("a",)))
    assert rec["variant"] is None and rec["text"].startswith("none qualifies")
    assert "a +30.0 [+20, +40] fails the gate on held" in rec["text"]
    rec = recommend(_study([_row("b", "arith", 0.02, [-0.05, 0.09], p=0.6)]))
    assert rec["variant"] is None and "no variant gained on the target `arith`" in rec["text"]


def test_without_gate_rules_it_says_so_and_a_loss_within_the_margin_does_not_disqualify():
    within = {**_row("a", "held", -0.01, [-0.03, -0.001]), "loss_bound": 0.03}  # lost, certified under 5 points
    rows = [_row("a", "arith", 0.30, [0.2, 0.4]), within]
    rec = recommend(_study(rows, gate=False))
    assert rec["variant"] == "a" and rec["text"].endswith("among variants that lost no held-out suite (no gate)")
