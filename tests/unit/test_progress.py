"""The study's overall progress line: which stage of how many, time elapsed, and time left from the stages of the
same kind already run (the kinds not run yet named, not guessed)."""

from driftlab.study import progress_line

PLAN = ["model_prepare", "data", "eval_base", "probes:base", "train:a", "eval:a", "probes:a", "compare:a",
        "train:b", "eval:b", "probes:b", "compare:b", "report"]


def test_counts_stages_and_names_what_it_cannot_estimate_yet():
    assert progress_line(PLAN, "model_prepare", {}, 0.4) == "[1/13] 0s elapsed"
    done = {"model_prepare": 2.0, "data": 1.0, "eval_base": 60.0, "probes:base": 30.0}
    assert progress_line(PLAN, "train:a", done, 93.0) == \
        "[5/13] 1m33s elapsed, ~3m00s left besides train, compare, report"  # eval:a, eval:b, probes:a, probes:b


def test_after_the_first_variant_every_kind_but_the_report_is_known():
    done = {"model_prepare": 2.0, "data": 1.0, "eval_base": 60.0, "probes:base": 30.0, "train:a": 100.0,
            "eval:a": 80.0, "probes:a": 30.0, "compare:a": 2.0}
    # train 100 + eval (60+80)/2 + probes 30 + compare 2 = 202 s
    assert progress_line(PLAN, "train:b", done, 305.0) == "[9/13] 5m05s elapsed, ~3m22s left besides report"
