import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from driftlab.cli import app
from tests.conftest import ARITH

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["model", "prepare"], ["data", "build"], ["train"], ["eval"], ["compare"],
                                  ["study"]])
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _config(tmp_path, **data_over):
    cfg = {"name": "t", "runs_dir": str(tmp_path / "runs"),
           "data": {"target": {**ARITH, "size": 5, "train_size": 10}, **data_over}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_key_exits_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["data", "build", "-c", str(_config(tmp_path)), "--set", "train.lerning_rate=1"])
    assert result.exit_code == 2
    assert "unknown config key 'train.lerning_rate'" in result.output
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_malformed_jsonl_exits_2_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a?", "answer": "1"}\n{"question": \n')
    cfg = _config(tmp_path, heldout=[{"name": "mine", "source": "jsonl", "path": str(bad)}])
    result = runner.invoke(app, ["data", "build", "-c", str(cfg)])
    assert result.exit_code == 2
    assert f"{bad}:2: not valid JSON" in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_task_exits_2(tmp_path):
    result = runner.invoke(app, ["data", "build", "-c", str(_config(tmp_path)), "--set",
                                 "data.target.task=no_such_task"])
    assert result.exit_code == 2
    assert "unknown reasoning-gym task 'no_such_task'" in result.output


def test_data_build_writes_a_new_run_dir(tmp_path):
    cfg = _config(tmp_path)
    for _ in range(2):
        result = runner.invoke(app, ["data", "build", "-c", str(cfg)])
        assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    report = json.loads((runs[0] / "data.json").read_text())
    assert report["train"] == 10 and report["contamination"]["train_eval_overlap_after_removal"] == 0


def test_version_names_driftlab_and_its_training_stack():
    out = CliRunner().invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.startswith("driftlab ") and "torch " in out.output and "trl " in out.output


def test_config_show_prints_a_config_that_reads_back_the_same(tmp_path):
    from driftlab.config import load_config

    out = CliRunner().invoke(app, ["config", "show", "-c", "configs/rl_hard.yaml", "--set", "seed=3"])
    assert out.exit_code == 0, out.output
    (tmp_path / "shown.yaml").write_text(out.output)
    shown = yaml.safe_load(out.output)
    assert shown["seed"] == 3 and shown["train"]["keep_checkpoints"] is False  # defaults filled in
    again = load_config(tmp_path / "shown.yaml").model_dump(mode="json")
    assert again == load_config("configs/rl_hard.yaml", ["seed=3"]).model_dump(mode="json")


def test_config_schema_documents_every_key_and_docs_config_md_is_current():
    from pathlib import Path

    from driftlab.config_doc import markdown, reference_rows

    rows = reference_rows()
    keys = {r["key"] for r in rows}
    assert {"train.items", "train.lora_r", "train.grpo.rewards[].weight", "eval.strategies[].n",
            "data.heldout[].terms", "probes.samples", "variants[].train"} <= keys
    assert [r["key"] for r in rows if not r["description"]] == []  # every key says what it is
    out = CliRunner().invoke(app, ["config", "schema"])
    assert out.exit_code == 0 and "train.keep_checkpoints  (bool, default False)" in out.output
    page = Path(__file__).parents[2] / "docs" / "config.md"
    assert page.read_text() == markdown(rows), "docs/config.md is stale: driftlab config schema --markdown > it"


def test_library_noise_is_off_unless_verbose(monkeypatch):
    import os

    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(var, "x")  # recorded, so both are put back as they were after the test
        monkeypatch.delenv(var)
    assert CliRunner().invoke(app, ["-v", "config", "schema"]).exit_code == 0
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ  # -v: the libraries as they are
    assert CliRunner().invoke(app, ["config", "schema"]).exit_code == 0
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # a user's own setting wins
    assert CliRunner().invoke(app, ["config", "schema"]).exit_code == 0 and os.environ["TRANSFORMERS_VERBOSITY"] == "info"


def test_library_warnings_go_to_the_runs_log_not_the_terminal(monkeypatch, tmp_path, capsys):
    import warnings

    from driftlab.cli import quiet_libraries
    from driftlab.runs import run_log

    import sys

    def to_terminal(message, category, filename, lineno, file=None, line=None):  # what Python does by default
        print(f"{category.__name__}: {message}", file=sys.stderr)

    monkeypatch.setattr(warnings, "showwarning", to_terminal)  # and put back after the test
    import logging
    from pathlib import Path

    import driftlab

    quiet_libraries()
    quiet_libraries()  # a second command in the same process routes once
    lib = "/x/driftlab/.venv/lib/python3.11/site-packages/transformers/generation/utils.py"  # a clone named driftlab
    ours = str(Path(driftlab.__file__).parent / "eval" / "hf_backend.py")
    warnings.showwarning("raised before the run dir existed", FutureWarning, lib, 11)
    run_log(tmp_path)
    warnings.showwarning("`past_key_values` is deprecated", FutureWarning, lib, 12)
    warnings.showwarning("a library's UserWarning", UserWarning, lib, 13)
    warnings.showwarning("driftlab's own warning", UserWarning, ours, 307)
    logging.getLogger("trl.trainer").warning("TRL's own logger speaking")
    err = capsys.readouterr().err
    log = (tmp_path / "log.txt").read_text()
    assert "raised before the run dir" in log and "past_key_values" in log and "a library's UserWarning" in log
    assert "TRL's own logger" in log and "driftlab's own" not in log
    assert "driftlab's own warning" in err and "past_key_values" not in err and "library's" not in err
    assert "TRL's own" not in err


# --- every command that reads a config takes --config/-c and --set/-s -------------------------------------------

def test_every_command_that_reads_a_config_takes_config_and_set():
    import typer

    def commands(group, prefix=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), {opt for p in cmd.params for opt in p.opts}

    found = dict(commands(typer.main.get_command(app)))
    without = {name for name, opts in found.items() if "--config" not in opts}
    assert without == {"model prepare", "config schema", "svf-combine", "list"}  # they read no config
    for name, opts in found.items():
        if name not in without:
            assert {"--config", "-c", "--set", "-s"} <= opts, name


def test_export_takes_the_base_model_from_the_config_unless_model_names_one(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("driftlab.models.export_merged", lambda artifact, base, out: calls.append(base))
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + "model: {name_or_path: from-config}\n")
    for extra, want in (([], "from-config"), (["--set", "model.name_or_path=from-set"], "from-set"),
                        (["--model", "from-option"], "from-option")):
        out = runner.invoke(app, ["export", "--artifact", "a", "--out", str(tmp_path / "m"), "-c", str(cfg), *extra])
        assert out.exit_code == 0, out.output
        assert calls[-1] == want
    bad = runner.invoke(app, ["export", "--artifact", "a", "--out", "m", "-c", str(cfg), "--set", "modle.x=1"])
    assert bad.exit_code == 2 and "unknown config key 'modle'" in bad.output
    monkeypatch.chdir(tmp_path)  # no configs/default.yaml here: --model alone needs no config file
    out = runner.invoke(app, ["export", "--artifact", "a", "--out", str(tmp_path / "m2"), "--model", "only"])
    assert out.exit_code == 0 and calls[-1] == "only", out.output


# --- compare: points, whole suite names at 80 columns, the verdicts at the end ---------------------------------

from tests.unit.test_compare_results import _eval_dir  # noqa: E402  (an eval dir from right/wrong outcomes)

LONG_SUITE = "multistep_3@self_consistency"


def test_compare_at_80_columns_prints_whole_suite_names_and_ends_with_changes_in_points(tmp_path):
    run = tmp_path / "run"
    _eval_dir(run / "eval/base", {"target": [0] * 20 + [1] * 20, LONG_SUITE: [0] * 10 + [1] * 10, "held": [1] * 30})
    _eval_dir(run / "eval/lora", {"target": [1] * 40, LONG_SUITE: [1] * 20, "held": [1] * 18 + [0] * 12})
    (run / "study.json").write_text("{}")
    out = runner.invoke(app, ["compare", f"{run}:base", f"{run}:lora", "--out", str(tmp_path / "c")],
                        env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert max(len(line) for line in out.output.splitlines()) <= 80
    named = [line for line in out.output.splitlines() if "multistep" in line]
    assert len(named) == 2 and all(LONG_SUITE in line for line in named)  # both tables, never cut
    assert "…" not in out.output
    # the answer closes the output: change in points, its CI in points, the verdict (held-out: a cost)
    tail = out.output[out.output.rindex("change, verdict"):]
    assert "+50.0 [+35.0, +65.0] gained" in tail and "100.0% → 60.0%" in tail and "LOST" in tail
    assert out.output.rstrip().endswith("compare.json")


def test_compare_set_needs_a_config_and_applies_with_one(tmp_path):
    run = tmp_path / "run"
    _eval_dir(run / "eval/base", {"target": [0, 1] * 10})
    _eval_dir(run / "eval/lora", {"target": [1, 1] * 10})
    args = ["compare", str(run / "eval/base"), str(run / "eval/lora")]
    alone = runner.invoke(app, [*args, "--set", "compare.n_bootstrap=200", "--out", str(tmp_path / "x")])
    assert alone.exit_code == 2 and "--set needs --config" in alone.output and not (tmp_path / "x").exists()
    both = runner.invoke(app, [*args, "-c", str(_config(tmp_path)), "--set", "compare.n_bootstrap=200",
                               "--out", str(tmp_path / "y")])
    assert both.exit_code == 0, both.output
    assert json.loads((tmp_path / "y/compare.json").read_text())["method"]["n_bootstrap"] == 200


# --- gate: points, the gate line and each violated check -------------------------------------------------------

def _gate_study(tmp_path):
    def row(suite, diff, ci95):
        return {"variant": "lora", "suite": suite, "n": 50, "base_acc": 0.5, "tuned_acc": 0.5 + diff, "diff": diff,
                "ci95": ci95, "mcnemar_p": 0.01, "right_to_wrong": 0, "wrong_to_right": 0, "chance": 0.25,
                "floor": False, "n_bootstrap": 200, "confidence": 0.95}

    def suite(name, role):
        return {"name": name, "role": role, "n": 50, "strategy": "zero_shot", "chance": 0.25, "floor": False,
                "base_metrics": {}}

    run = tmp_path / "run"
    run.mkdir()
    study = {"name": "t", "seed": 0, "run_dir": str(run), "model": {"name": "m", "path": "m", "fingerprint": "f"},
             "suites": [suite("arithmetic", "target"), suite("capitals", "heldout")],
             "variants": [{"name": "lora", "method": "lora", "train": {}, "eval": {}}],
             "comparisons": [row("arithmetic", 0.14, [0.09, 0.2]), row("capitals", -0.1, [-0.2, -0.01])],
             "data": {}, "timings_s": {},
             "probes": {"base": {}, "variants": {}, "comparisons": [
                 {"variant": "lora", "probe": "drift", "metric": "kl", "n": 24, "base": 0.0, "tuned": 0.3,
                  "diff": 0.3, "ci95": [0.2, 0.4]}]}}
    (run / "study.json").write_text(json.dumps(study))
    rules = [{"suites": "target", "min_diff": 0.05, "ci": "excludes_zero"},
             {"suites": "heldout", "max_loss": 0.02, "ci": "excludes_zero"},
             {"probe": "drift.kl", "max_rise": 0.5}]
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"target": ARITH}, "gate": rules}))
    return run


def test_gate_prints_suite_changes_in_points_and_ends_with_the_violated_checks(tmp_path):
    out = runner.invoke(app, ["gate", str(_gate_study(tmp_path))], env={"COLUMNS": "80"})
    assert out.exit_code == 1, out.output
    assert "+14.0 [+9.0, +20.0] pts" in out.output and "-10.0 [-20.0, -1.0] pts" in out.output
    assert "+0.300 [+0.200, +0.400]" in out.output  # a probe metric stays in its own units
    assert "+0.140" not in out.output
    lines = out.output.splitlines()
    gate_line = next(i for i, line in enumerate(lines) if line.startswith("gate: FAILED (1 of 3 checks"))
    failed = lines[gate_line + 1:]
    assert len(failed) == 1 and failed[0].startswith("  lora, rule 1, capitals (-10.0 [-20.0, -1.0] pts): lost")


def test_gate_set_overrides_the_runs_rules(tmp_path):
    run = _gate_study(tmp_path)
    out = runner.invoke(app, ["gate", str(run), "--set", "gate.1.max_loss=0.5", "--set", "gate.1.ci=any"])
    assert out.exit_code == 0, out.output
    assert "gate: passed (0 of 3 checks violated)" in out.output


# --- eval: the summary names the run dir and the suites at their floor -------------------------------------------

def test_eval_ends_with_accuracy_per_suite_its_floor_and_the_run_dir(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    summary = {"model": str(model), "artifact": None, "cache": None, "skipped": [], "suites": {
        "arithmetic": {"n": 50, "correct": 40, "accuracy": 0.8, "chance": 0.25, "format_rate": 1.0},
        "capitals": {"n": 50, "correct": 14, "accuracy": 0.28, "chance": 0.25, "format_rate": 0.9}}}
    monkeypatch.setattr("driftlab.eval.evaluate_model", lambda *a, **k: summary)
    out_dir = tmp_path / "ev"
    out = runner.invoke(app, ["eval", "-c", str(_config(tmp_path)), "--model", str(model), "--out", str(out_dir)],
                        env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    arithmetic = next(line for line in out.output.splitlines() if "arithmetic" in line)
    capitals = next(line for line in out.output.splitlines() if "capitals" in line)
    assert "80.0%" in arithmetic and "floor" not in arithmetic
    assert "28.0% (at floor)" in capitals  # 14 of 50 is not significantly above 25% + 2 points
    assert f"eval run: {out_dir}" in out.output


# --- sweep: --config/--set choose its settings; pareto.html holds the table ---------------------------------------

def _sweep_run(tmp_path):
    """A study run with what `driftlab sweep` reads (model dir, suites, adapter, endpoint evals) — no weights."""
    run = tmp_path / "run"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (run / "train/lora/adapter").mkdir(parents=True)
    (run / "train/lora/adapter/adapter_config.json").write_text("{}")
    (run / "data/suites").mkdir(parents=True)
    ids = [{"id": f"arithmetic-{i}", "prompt": f"q{i}"} for i in range(8)]
    (run / "data/suites/arithmetic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ids))
    for name in ("base", "lora"):
        _eval_dir(run / "eval" / name, {"arithmetic": [name == "lora"] * 8})
    study = {"name": "t", "seed": 0, "run_dir": str(run), "model": {"name": "m", "path": "m", "fingerprint": "f"},
             "suites": [{"name": "arithmetic", "role": "target", "n": 8, "strategy": "zero_shot", "chance": 0.0,
                         "floor": False, "base_metrics": {}}],
             "variants": [{"name": "lora", "method": "lora", "train": {}, "eval": {}}], "comparisons": [],
             "data": {}, "timings_s": {}}
    (run / "study.json").write_text(json.dumps(study))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"name_or_path": str(model)},
        "data": {"target": {**ARITH, "size": 8}}, "sweep": {"scales": [0.5], "limit": 6},
        "compare": {"n_bootstrap": 300}}))
    return run


def test_sweep_takes_its_settings_from_config_and_set_and_writes_its_table_into_the_page(tmp_path, monkeypatch):
    seen = []

    def run_sweep(inputs, spec, out_dir):
        seen.append((spec, inputs.cfg))
        points = [{"variant": "lora", "alpha": a, "target_gain": g, "target_ci": [g - 0.1, g + 0.1],
                   "heldout_change": -a / 10, "heldout_ci": [-0.2, 0.05], "suites": {}, "frontier": a == 1.0}
                  for a, g in ((0.0, 0.0), (0.5, 0.25), (1.0, 0.5))]
        return {"scales": [0.0, 0.5, 1.0], "limit": spec.limit, "items": {"arithmetic": 6}, "n_bootstrap": 300,
                "confidence": 0.95, "points": points}

    monkeypatch.setattr("driftlab.compare.sweep.run_sweep", run_sweep)
    run = _sweep_run(tmp_path)
    default = runner.invoke(app, ["sweep", str(run), "--out", str(tmp_path / "s1")], env={"COLUMNS": "120"})
    assert default.exit_code == 0, default.output
    assert (seen[-1][0].scales, seen[-1][0].limit) == ([0.5], 6)  # the run's own config.yaml
    assert "+25.0 [+15.0, +35.0]" in default.output

    overridden = runner.invoke(app, ["sweep", str(run), "--set", "sweep.limit=3", "--out", str(tmp_path / "s2")])
    assert overridden.exit_code == 0, overridden.output
    assert seen[-1][0].limit == 3 and seen[-1][0].scales == [0.5]

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"model": {"name_or_path": "elsewhere"}, "data": {"target": ARITH},
                                     "sweep": {"scales": [0.25, 0.75]}, "compare": {"n_bootstrap": 123}}))
    chosen = runner.invoke(app, ["sweep", str(run), "-c", str(other), "--out", str(tmp_path / "s3")])
    assert chosen.exit_code == 0, chosen.output
    spec, cfg = seen[-1]
    assert spec.scales == [0.25, 0.75] and spec.limit is None and cfg.compare.n_bootstrap == 123
    assert cfg.model.name_or_path == str(tmp_path / "model")  # model, data, eval: always the run's

    ignored = runner.invoke(app, ["sweep", str(run), "--set", "eval.batch_size=2", "--out", str(tmp_path / "s4")])
    assert ignored.exit_code == 2 and "a sweep takes only sweep and compare keys" in ignored.output
    assert not (tmp_path / "s4").exists()

    page = (tmp_path / "s1/pareto.html").read_text()
    assert "<th>target change (95% CI)</th>" in page and "<th>held-out change (95% CI)</th>" in page
    assert "<td>lora</td><td>0.5</td><td>+25.0 [+15.0, +35.0]</td><td>-5.0 [-20.0, +5.0]</td><td></td>" in page
    assert "<script src" not in page  # self-contained: plotly.js inlined, no CDN
    assert re.search(r"pareto\.html \d+\.\d MB", default.output)  # its size, said
