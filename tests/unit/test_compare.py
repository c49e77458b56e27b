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


def _row(ci95, mcnemar_p, floor=False):
    return Comparison(variant="v", suite="s", n=50, base_acc=0.5, tuned_acc=0.5 + sum(ci95) / 2, diff=sum(ci95) / 2,
                      ci95=ci95, mcnemar_p=mcnemar_p, right_to_wrong=0, wrong_to_right=4, chance=0.25, floor=floor,
                      n_bootstrap=200, confidence=0.95)


def test_verdict_needs_ci_and_mcnemar():
    row = _row([0.01, 0.07], 0.125)  # 4 flips up, 0 down: CI excludes 0, p does not
    assert verdict(row, "target") == "no significant change"
    assert verdict(_row([0.01, 0.07], 0.01), "target") == "gained"
    assert verdict(_row([-0.3, -0.1], 0.001), "heldout") == "lost"
    assert verdict(_row([-0.3, -0.1], 0.001, floor=True), "heldout").startswith("at floor")


def test_benjamini_hochberg_by_hand():
    from driftlab.compare.paired import with_bh

    rows = with_bh({k: {"mcnemar_p": p} for k, p in zip("abcd", [0.01, 0.04, 0.03, 0.2])})
    # sorted 0.01, 0.03, 0.04, 0.2 -> p*m/rank 0.04, 0.06, 0.0533, 0.2 -> running min from the top
    assert [round(rows[k]["p_bh"], 4) for k in "abcd"] == [0.04, 0.0533, 0.0533, 0.2]
