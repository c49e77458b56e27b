"""The regression gate on constructed studies: exit 1 on a regression, 0 on a clean run, 2 on an error."""

import json

import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from tests.conftest import ARITH

RULES = [{"suites": "target", "min_diff": 0.05, "ci": "excludes_zero"},
         {"suites": "heldout", "max_loss": 0.02, "ci": "excludes_zero"},
         {"probe": "drift.kl", "max_rise": 0.5}]


def _row(suite, diff, ci95, floor=False):
    return {"variant": "lora", "suite": suite, "n": 50, "base_acc": 0.5, "tuned_acc": 0.5 + diff, "diff": diff,
            "ci95": ci95, "mcnemar_p": 0.01, "right_to_wrong": 0, "wrong_to_right": 0, "chance": 0.25,
            "floor": floor, "n_bootstrap": 200, "confidence": 0.95}


def _suite(name, role):
    return {"name": name, "role": role, "n": 50, "strategy": name.partition("@")[2] or "zero_shot", "chance": 0.25,
            "floor": False, "base_metrics": {}}


def _study(tmp_path, capitals_diff: float, capitals_ci: list, floor: bool = False, kl: float = 0.3):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    rows = [_row("arithmetic", 0.2, [0.09, 0.31]), _row("arithmetic@cot", -0.5, [-0.6, -0.4]),
            _row("capitals", capitals_diff, capitals_ci, floor)]
    study = {"name": "t", "seed": 0, "run_dir": str(run), "model": {"name": "m", "path": "m", "fingerprint": "f"},
             "suites": [_suite("arithmetic", "target"), _suite("arithmetic@cot", "target"),
                        _suite("capitals", "heldout")],
             "variants": [{"name": "lora", "method": "lora", "train": {}, "eval": {}}], "comparisons": rows,
             "data": {}, "timings_s": {},
             "probes": {"base": {}, "variants": {}, "comparisons": [
                 {"variant": "lora", "probe": "drift", "metric": "kl", "n": 24, "base": 0.0, "tuned": kl, "diff": kl,
                  "ci95": [kl - 0.1, kl + 0.1]}]}}
    (run / "study.json").write_text(json.dumps(study))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"target": ARITH}, "gate": RULES}))
    return run


def test_gate_fails_on_a_constructed_regression(tmp_path):
    run = _study(tmp_path, capitals_diff=-0.10, capitals_ci=[-0.20, -0.01])
    result = CliRunner().invoke(app, ["gate", str(run)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "capitals" in result.output and "gate: FAILED (1 of 3" in result.output


def test_max_loss_is_non_inferiority(tmp_path):
    """A loss whose CI includes 0 is not a pass: the gate passes only when the data exclude a loss beyond the
    margin, and says "cannot certify" (with the items that would) when they do not."""
    noisy = _study(tmp_path, capitals_diff=-0.071, capitals_ci=[-0.157, 0.014])  # SVF's capitals at a11c114
    out = CliRunner().invoke(app, ["gate", str(noisy)], env={"COLUMNS": "250"})
    assert out.exit_code == 1 and "cannot certify a loss smaller than 2.0 pts" in out.output
    assert "items would certify" in out.output
    certified = _study(tmp_path / "c", capitals_diff=-0.005, capitals_ci=[-0.015, 0.01])
    out = CliRunner().invoke(app, ["gate", str(certified)], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    floor = _study(tmp_path / "f", capitals_diff=-0.3, capitals_ci=[-0.4, -0.2], floor=True)
    assert CliRunner().invoke(app, ["gate", str(floor)]).exit_code == 0  # a floor suite has no loss to show


def test_max_loss_with_ci_any_reads_the_point_estimate():
    from driftlab.compare.gate import _check
    from driftlab.config import GateRule
    from driftlab.schema import Comparison

    rule = GateRule(suites="heldout", max_loss=0.02, ci="any")
    row = Comparison(**{k: v for k, v in _row("capitals", -0.01, [-0.15, 0.13]).items()})
    assert _check(rule, row)[0] and not _check(rule, row.model_copy(update={"diff": -0.03}))[0]
    # a point-estimate failure says whether the data show the loss or cannot tell it from none
    assert "cannot tell" in _check(rule, row.model_copy(update={"diff": -0.03}))[1]
    shown = _check(rule, row.model_copy(update={"diff": -0.1, "ci95": [-0.2, -0.05]}))[1]
    assert "lies below 0: a loss" in shown and "cannot tell" not in shown
    strict = GateRule(suites="heldout", max_loss=0.02, ci="excludes_zero")
    passed, why = _check(strict, row.model_copy(update={"diff": -0.1, "ci95": [-0.2, -0.05]}))
    assert not passed and why.startswith("lost")


def test_gate_probe_rule_and_errors(tmp_path):
    drifted = _study(tmp_path, capitals_diff=0.0, capitals_ci=[-0.05, 0.05], kl=0.9)
    out = CliRunner().invoke(app, ["gate", str(drifted)])
    assert out.exit_code == 1 and "drift.kl" in out.output
    assert CliRunner().invoke(app, ["gate", str(tmp_path / "nowhere")]).exit_code == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "study.json").write_text('{"name": "t"}')
    broken = CliRunner().invoke(app, ["gate", str(tmp_path / "broken")])
    assert broken.exit_code == 2 and "not a driftlab study.json" in broken.output
    bad = CliRunner().invoke(app, ["gate", str(drifted), "--set", "gate.0.min_diff=oops"])
    assert bad.exit_code == 2 and "gate" in bad.output


def test_gate_needs_more_than_a_collapsed_bootstrap_and_still_sees_a_floor_loss():
    from driftlab.compare.gate import _check
    from driftlab.compare.stats import loss_bound
    from driftlab.config import GateRule
    from driftlab.schema import Comparison

    rule = GateRule(suites="heldout", max_loss=0.05, ci="excludes_zero")
    empty = Comparison(**{**_row("tiny", 0.0, [0.0, 0.0]), "n": 20, "loss_bound": loss_bound(20, 0, 0)})
    passed, why = _check(rule, empty)  # nothing flipped on 20 items: CI [0, 0], yet a 16-point loss is plausible
    assert not passed and "cannot certify" in why and "exact bound on the loss 16.8 pts" in why
    big = empty.model_copy(update={"n": 300, "loss_bound": loss_bound(300, 0, 0)})
    assert _check(rule, big)[0]
    gain = GateRule(suites="target", min_diff=0.05, ci="excludes_zero")
    row = Comparison(**{**_row("arithmetic", 0.12, [0.02, 0.22]), "p_adj": 0.08})
    passed, why = _check(gain, row)  # CI above 0, but the corrected p (what the verdict reads) is not
    assert not passed and "corrected McNemar p" in why


def test_a_floor_suite_that_falls_significantly_is_not_skipped(tmp_path):
    run = _study(tmp_path, capitals_diff=-0.3, capitals_ci=[-0.4, -0.2], floor=True)
    study = json.loads((run / "study.json").read_text())
    study["comparisons"][2]["p_adj"] = 0.001
    (run / "study.json").write_text(json.dumps(study))
    out = CliRunner().invoke(app, ["gate", str(run)], env={"COLUMNS": "250"})
    assert out.exit_code == 1 and "lost" in out.output
