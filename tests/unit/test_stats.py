import numpy as np
import pytest

from driftlab.compare.stats import at_floor, mcnemar_exact, paired_bootstrap_ci, wilson_interval


def test_mcnemar_by_hand():
    # b = 1 right->wrong, c = 9 wrong->right: p = 2 * P(X <= 1 | n=10, 1/2) = 2 * (1 + 10) / 1024
    base = np.array([1] * 1 + [0] * 9 + [1] * 5 + [0] * 5, dtype=bool)
    tuned = np.array([0] * 1 + [1] * 9 + [1] * 5 + [0] * 5, dtype=bool)
    r = mcnemar_exact(base, tuned)
    assert (r["right_to_wrong"], r["wrong_to_right"]) == (1, 9)
    assert r["p_value"] == pytest.approx(22 / 1024)


def test_mcnemar_no_discordant_pairs():
    x = np.array([1, 0, 1], dtype=bool)
    assert mcnemar_exact(x, x)["p_value"] == 1.0


def test_paired_bootstrap_matches_a_reference_loop():
    rng = np.random.default_rng(1)
    base = rng.random(200) < 0.4
    tuned = base.copy()
    flip = rng.random(200) < 0.3
    tuned[flip] = rng.random(flip.sum()) < 0.7
    lo, hi = paired_bootstrap_ci(base, tuned, n_resamples=4000, seed=7)
    # Independent reference: a plain python loop with its own RNG stream.
    ref_rng = np.random.default_rng(123)
    d = tuned.astype(float) - base.astype(float)
    means = [d[ref_rng.integers(0, len(d), len(d))].mean() for _ in range(4000)]
    ref_lo, ref_hi = np.percentile(means, [2.5, 97.5])
    assert lo == pytest.approx(ref_lo, abs=0.012) and hi == pytest.approx(ref_hi, abs=0.012)
    # and the normal approximation agrees too
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert lo == pytest.approx(d.mean() - 1.96 * se, abs=0.015)


def test_bootstrap_is_deterministic_and_degenerate_when_identical():
    a = np.array([1, 0, 1, 1, 0], dtype=bool)
    assert paired_bootstrap_ci(a, a) == (0.0, 0.0)
    b = np.array([1, 1, 1, 1, 0], dtype=bool)
    assert paired_bootstrap_ci(a, b, seed=3) == paired_bootstrap_ci(a, b, seed=3)


def test_floor_flag():
    assert at_floor(26, 100, chance=0.25) is True  # at chance (a real bool: it goes to JSON)
    assert not at_floor(60, 100, chance=0.25)    # clearly above
    assert at_floor(2, 100, chance=0.0)          # 2% of a free-form task is noise
    assert not at_floor(15, 100, chance=0.0)


def test_wilson_known_value():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_grouped_bootstrap_reduces_to_the_paired_one_and_averages_groups():
    from driftlab.compare.stats import grouped_bootstrap_ci

    rng = np.random.default_rng(3)
    base, tuned = rng.random(80) < 0.5, rng.random(80) < 0.6
    d = tuned.astype(float) - base.astype(float)
    assert grouped_bootstrap_ci([d], 2000, 0.95, seed=5) == paired_bootstrap_ci(base, tuned, 2000, 0.95, seed=5)
    # Constant differences per group: every resample has the same mean of group means.
    lo, hi = grouped_bootstrap_ci([np.full(10, 0.2), np.full(30, -0.4)], 500, 0.95, seed=0)
    assert lo == pytest.approx(-0.1) and hi == pytest.approx(-0.1)
    # Groups weigh equally whatever their size (a mean over suites, not over items).
    lo, hi = grouped_bootstrap_ci([np.ones(5), np.zeros(500)], 500, 0.95, seed=0)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    with pytest.raises(ValueError):
        grouped_bootstrap_ci([np.ones(3), np.array([])])
