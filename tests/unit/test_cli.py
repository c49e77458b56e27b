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
