"""The default study's wall time, per stage: once cold (empty results store and train cache) and once warm (the same
study again: every eval item from the results store, every fine-tune from the train cache). The converted model
and the embedding model are reused (linked from $DRIFTLAB_HOME): `make study` adds their one-time conversion and
the venv install on a fresh clone.

    python benchmarks/study_wall_time.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, save  # noqa: E402


def run_study(home: Path, config: Path) -> dict:
    env = {**os.environ, "DRIFTLAB_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    before = set((ROOT / "runs").glob("*")) if (ROOT / "runs").exists() else set()
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "driftlab"), "study", "-c", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    (run_dir,) = set((ROOT / "runs").glob("*")) - before  # the config's runs_dir: runs/
    study_json = run_dir / "study.json"
    study = json.loads(study_json.read_text())
    return {"wall_s": round(wall, 1), "run_dir": str(study_json.parent), "timings_s": study["timings_s"]}


def main() -> None:
    from driftlab.models import driftlab_home, resolve_model

    config = ROOT / "configs" / "default.yaml"
    resolve_model("embedded")  # converted once, outside the timers
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    (home / "models").mkdir()
    for entry in (driftlab_home() / "models").iterdir():
        (home / "models" / entry.name).symlink_to(entry)
    print("study_wall_time: cold ...", file=sys.stderr, flush=True)
    cold = run_study(home, config)
    print(f"  {cold['wall_s']} s; warm ...", file=sys.stderr, flush=True)
    warm = run_study(home, config)
    result = {"benchmark": "study_wall_time", "machine": machine(), "command": "python benchmarks/study_wall_time.py",
              "config": "configs/default.yaml", "cold": cold, "warm": warm,
              "ratios": {"warm_vs_cold": round(warm["wall_s"] / cold["wall_s"], 3)}}
    print(json.dumps(result["ratios"]), file=sys.stderr)
    save("study_wall_time", result)


if __name__ == "__main__":
    main()
