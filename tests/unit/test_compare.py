import pytest

from driftlab.compare import compare_suite
from driftlab.config import CompareConfig
from driftlab.errors import DataError
from driftlab.compare.verdict import verdict
from driftlab.schema import Comparison


def records(correct, prompts=None):
    prompts = prompts or [f"q{i}" for i in range(len(correct))]
    return [{"id": f"s-{i:03d}", "prompt": p, "gold": "1", "correct": c} for i, (p, c) in
            enumerate(zip(prompts, correct))]


def test_compare_pairs_by_id_and_counts_flips():
    base = records([True, True, False, False, False])
    tuned = list(reversed(records([False, True, True, True, True])))  # order must not matter
    row = compare_suite(base, tuned, chance=0.0, cfg=CompareConfig(n_bootstrap=200))
    assert (row["right_to_wrong"], row["wrong_to_right"]) == (1, 3)
    assert row["diff"] == pytest.approx(0.4)


def test_compare_refuses_different_items_under_the_same_ids():
    base = records([True, False])
    tuned = records([True, False], prompts=["q0", "another question"])
    with pytest.raises(DataError, match="different prompt"):
        compare_suite(base, tuned, chance=0.0, cfg=CompareConfig(n_bootstrap=200))


def _row(ci95, p_adj, floor=False, mcnemar_p=None):
    return Comparison(variant="v", suite="s", n=50, base_acc=0.5, tuned_acc=0.5 + sum(ci95) / 2, diff=sum(ci95) / 2,
                      ci95=ci95, mcnemar_p=p_adj if mcnemar_p is None else mcnemar_p, p_adj=p_adj,
                      right_to_wrong=0, wrong_to_right=4, chance=0.25, floor=floor, n_bootstrap=200, confidence=0.95,
                      margin=0.05)


def test_every_verdict_state():
    assert verdict(_row([0.01, 0.07], 0.01)) == "gained"
    assert verdict(_row([0.01, 0.07], 0.125)) == "no loss beyond the margin"  # CI above 0, corrected p is not
    assert verdict(_row([-0.3, -0.1], 0.001)) == "lost"
    assert verdict(_row([-0.04, 0.06], 0.6)) == "no loss beyond the margin"  # lower bound above -margin
    assert verdict(_row([-0.157, 0.014], 0.18)) == "cannot tell"  # a 7-point drop, CI reaching -15.7
    assert verdict(_row([-0.05, 0.02], 0.5)) == "cannot tell"  # the bound must lie above -margin, not on it
    assert verdict(_row([-0.3, 0.02], 0.2, floor=True)).startswith("at floor")  # nothing to lose
    assert verdict(_row([-0.3, -0.1], 0.001, floor=True)) == "lost"  # ... unless it fell significantly
    assert verdict(_row([-0.04, -0.01], 0.01)) == "lost, within the margin"
    # No flips on 20 items: the bootstrap CI is [0, 0], but the exact bound on the loss (16.8 pts) certifies
    # nothing at a 5-point margin.
    from driftlab.compare.stats import loss_bound

    empty = _row([0.0, 0.0], 1.0).model_copy(update={"loss_bound": loss_bound(20, 0, 0)})
    assert empty.loss_bound > 0.16 and verdict(empty) == "cannot tell"
    assert loss_bound(72, 0, 0) < 0.05 < loss_bound(71, 0, 0)
    assert verdict(_row([0.08, 0.3], 0.001, floor=True)) == "gained"  # a gain from the floor is still a gain
    # A target row is what was trained for: gained, lost, at floor, or no significant change (no cost verdict).
    assert verdict(_row([0.02, 0.22], 0.08), "target") == "no significant change"
    assert verdict(_row([0.02, 0.22], 0.01), "target") == "gained"
    assert verdict(_row([-0.2, 0.05], 0.4, floor=True), "target").startswith("at floor")


def test_headline_gains_use_the_corrected_p():
    """The uncorrected p would call it a gain; the corrected one (what verdicts read) does not."""
    assert verdict(_row([0.01, 0.2], 0.08, mcnemar_p=0.02)) != "gained"


def test_p_corrections_by_hand():
    from driftlab.compare.paired import with_adjusted_p

    p = [0.01, 0.04, 0.03, 0.2]
    rows = with_adjusted_p({k: {"mcnemar_p": v} for k, v in zip("abcd", p)}, "bh")
    # sorted 0.01, 0.03, 0.04, 0.2 -> p*m/rank 0.04, 0.06, 0.0533, 0.2 -> running min from the top
    assert [round(rows[k]["p_adj"], 4) for k in "abcd"] == [0.04, 0.0533, 0.0533, 0.2]
    assert rows["a"]["correction"] == "bh"
    holm = with_adjusted_p({k: {"mcnemar_p": v} for k, v in zip("abcd", p)}, "holm")
    # sorted 0.01*4, 0.03*3, 0.04*2 (running max 0.09), 0.2*1 (max 0.2)
    assert [round(holm[k]["p_adj"], 4) for k in "abcd"] == [0.04, 0.09, 0.09, 0.2]
    bonf = with_adjusted_p({k: {"mcnemar_p": v} for k, v in zip("abcd", p)}, "bonferroni")
    assert [round(bonf[k]["p_adj"], 4) for k in "abcd"] == [0.04, 0.16, 0.12, 0.8]
    none = with_adjusted_p({k: {"mcnemar_p": v} for k, v in zip("abcd", p)}, "none")
    assert [none[k]["p_adj"] for k in "abcd"] == p


def test_power_matches_simulation_and_the_mde_is_where_it_reaches_80_percent():
    import numpy as np
    from scipy.stats import binomtest

    from driftlab.compare.stats import mcnemar_power, min_detectable_difference

    rng, n, rate, delta, hits = np.random.default_rng(0), 70, 0.15, 0.1, 0
    for _ in range(2000):  # simulate the exact test on paired flips
        k = rng.binomial(n, rate)
        c = rng.binomial(k, (1 + delta / rate) / 2)
        hits += k > 0 and binomtest(min(c, k - c), k, 0.5).pvalue < 0.05
    assert abs(hits / 2000 - mcnemar_power(n, rate, delta)) < 0.03
    mde = min_detectable_difference(70, 8)  # capitals-like: 70 items, 8 flips
    assert mcnemar_power(70, 8 / 70, mde) >= 0.8 > mcnemar_power(70, 8 / 70, mde - 0.005)
    assert 0.09 < mde < 0.13
    assert min_detectable_difference(5, 0) is None  # 5 items: no flip pattern reaches p < 0.05
    assert min_detectable_difference(400, 40) < 0.05 < min_detectable_difference(100, 10)


def test_items_to_certify_by_hand():
    from driftlab.compare.stats import items_to_certify

    # no difference: (1.96 + 0.8416)^2 * (10 + 1) / (100 + 2) / 0.05^2 = 338.6 -> 339
    assert items_to_certify(100, 5, 5, 0.05) == 339
    # an observed loss of 2 points leaves 3 to the margin: ... / 0.03^2 = 940.6 -> 941
    assert items_to_certify(100, 6, 4, 0.05) == 941
    assert items_to_certify(100, 10, 4, 0.05) is None  # a 6-point loss already exceeds the margin
    assert items_to_certify(1000, 0, 0, 0.05) == 72  # never below the exact zero-flip bound


def test_cannot_tell_says_what_would_tell():
    from driftlab.compare.verdict import cannot_tell_text

    row = _row([-0.157, 0.014], 0.25).model_copy(update={"suite": "capitals", "mde": 0.119, "n_to_certify": None,
                                                        "diff": -0.071})
    assert cannot_tell_text(row) == "capitals (mde 12 pts; the observed -7.1 already exceeds −5)"
    assert "~437 items would certify −5" in cannot_tell_text(row.model_copy(update={"n_to_certify": 437}))
