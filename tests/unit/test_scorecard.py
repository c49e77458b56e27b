"""The scorecard at the top of the reports, on a constructed study: suites × variants coloured by verdict, probe
findings in the same table (a headline metric always, another only when its CI excludes 0), the gate row and the
recommendation."""

from driftlab.compare.verdict import probe_verdict
from driftlab.report.html import render_html
from driftlab.report.markdown import render_markdown
from driftlab.report.scorecard import scorecard
from driftlab.schema import ProbeComparison, Study
from tests.unit.test_recommend import _row, _study


def _probe(variant, probe, metric, diff, ci95, base=0.5):
    return {"variant": variant, "probe": probe, "metric": metric, "n": 20, "base": base, "tuned": base + diff,
            "diff": diff, "ci95": ci95}


def _card_study():
    rows = [_row("a", "arith", 0.30, [0.2, 0.4]), _row("a", "held", -0.2, [-0.3, -0.1]),
            _row("b", "arith", 0.02, [-0.05, 0.09], p=0.6), _row("b", "held", 0.0, [-0.02, 0.02], p=1.0)]
    study = _study(rows, failed=("a",))
    probes = [_probe("a", "faithfulness", "usable_chain", -1.0, [-1.0, -1.0], base=1.0),  # chains dropped
              _probe("b", "faithfulness", "usable_chain", 0.0, [-0.1, 0.1], base=1.0),
              _probe("a", "diversity", "distinct_2", -0.3, [-0.4, -0.2]),  # not headline, but a finding
              _probe("b", "diversity", "distinct_2", 0.0, [-0.1, 0.1]),
              _probe("a", "diversity", "self_bleu", 0.01, [-0.05, 0.07]),  # no finding: left to the probe table
              _probe("a", "drift", "kl", 0.4, [0.3, 0.5], base=0.0)]
    data = {**study.model_dump(), "data": {"train": 10, "contamination": {"removed_from_train": 0,
                                                                      "train_eval_overlap_after_removal": 0}},
            "probes": {"base": {"items": 20, "suite": "arith", "probes": {}, "timings_s": {}}, "variants": {},
                       "comparisons": probes}}
    for v in data["variants"]:
        v["train"] = {"method": "lora", "trainable_params": 1, "trainable_fraction": 0.1, "steps": 1, "tokens": 1,
                      "tokens_per_s": 1.0, "first_loss": 1.0, "final_loss": 0.5, "wall_s": 1.0}
    return Study.model_validate(data)


def test_probe_verdict_reads_the_metric_direction():
    def row(ci, probe="diversity", metric="distinct_2"):
        return ProbeComparison(variant="a", probe=probe, metric=metric, n=20, base=0, tuned=0, diff=0, ci95=ci)

    assert probe_verdict(row([-0.4, -0.2]), "higher") == "worse"
    assert probe_verdict(row([-0.4, -0.2]), "lower") == "better"
    assert probe_verdict(row([0.1, 0.2]), "higher") == "better"
    assert probe_verdict(row([-0.1, 0.2]), "higher") == "no significant change"
    assert probe_verdict(row([0.3, 0.5], "drift", "kl"), "lower") == "moved"  # every fine-tune drifts
    assert probe_verdict(row([0.3, 0.5]), "neither") == "moved"
    assert probe_verdict(row([0.3, 0.5], "drift", "nll_tuned"), "lower") == "moved"  # the base's own text
    assert probe_verdict(row([float("nan"), float("nan")]), "higher") == "n/a"
    assert probe_verdict(row([-0.4, -0.2]).model_copy(update={"n": 3}), "higher") == "too few items"


def test_scorecard_has_suites_then_probe_findings_the_gate_and_a_recommendation():
    study = _card_study()
    card = scorecard(study)
    labels = [r["label"] for r in card["rows"]]
    assert labels[:2] == ["arith", "held"]  # the target first
    assert {"faithfulness: usable_chain", "drift: kl", "diversity: distinct_2"} <= set(labels)
    assert "diversity: self_bleu" not in labels and card["hidden_probe_metrics"] == 1
    cells = {r["label"]: r["cells"] for r in card["rows"]}
    assert cells["arith"]["a"]["word"] == "gained" and cells["arith"]["a"]["css"] == "gained"
    assert cells["held"]["a"]["word"] == "lost" and cells["held"]["a"]["change"] == "-20.0 [-30.0, -10.0]"
    assert cells["faithfulness: usable_chain"]["a"]["word"] == "worse*"  # a lead, paler than a suite's "lost"
    assert cells["faithfulness: usable_chain"]["b"]["word"] == "no change shown"
    assert cells["faithfulness: usable_chain"]["a"]["value"] == "1 → 0 (n 20)"
    assert cells["diversity: distinct_2"]["a"]["css"] == "pworse" and cells["drift: kl"]["a"]["word"] == "moved"
    assert card["gate"] == {"a": ("FAILED (1 check)", "lost"), "b": ("passed", "gained")}
    assert card["recommendation"].startswith("none qualifies")


def test_both_reports_open_with_the_scorecard():
    study = _card_study()
    md = render_markdown(study)
    assert md.index("## Scorecard") < md.index("## Verdict")
    assert ("| faithfulness: usable_chain | probe (higher is better) | 20 | 1 | 1 → 0 (n 20) (-1 [-1, -1]) **worse*** |"
            in md) and "*: a probe row's 95% paired bootstrap CI excludes 0, uncorrected" in md
    assert "| gate | | | | **FAILED (1 check)** | **passed** |" in md and "**Recommended:** none qualifies" in md
    page = render_html(study, {})
    assert page.index("<h2>Scorecard</h2>") < page.index("<h2>Verdict</h2>")
    assert ("<td class='l card pworse'><b>1 → 0 (n 20)</b> -1 [-1, -1]<br><span class=word>worse*</span></td>"
            in page)

