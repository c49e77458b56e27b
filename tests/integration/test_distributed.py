"""The multi-process path without a GPU: torchrun with two CPU processes (gloo DDP; `accelerate launch` uses the
same torch launcher for its GPU configs, and runs a local CPU config as one process) trains the tiny model into one
run dir, written once by rank 0."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import tiny_study_config

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_cpu_launch(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["train"].update({"max_steps": 4, "save_steps": 2, "report_to": []})
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DRIFTLAB_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "driftlab.cli", "train", "-c", str(cfg_path), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "train.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert (out / "adapter" / "adapter_config.json").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]  # one writer: no duplicated rows
