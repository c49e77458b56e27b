import json

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

    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(var, "x")  # recorded, so both are put back as they were after the test
        monkeypatch.delenv(var)
    assert CliRunner().invoke(app, ["-v", "config", "schema"]).exit_code == 0
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ  # -v: the libraries as they are
    assert CliRunner().invoke(app, ["config", "schema"]).exit_code == 0
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # a user's own setting wins
    assert CliRunner().invoke(app, ["config", "schema"]).exit_code == 0 and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
