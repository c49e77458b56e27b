"""Reuse a finished fine-tune when the same one is asked for again.

Training is deterministic for a seed (fixed data order, seeded init, CPU kernels), so a run with the same base
weights, training set, config, seed and library versions reproduces the artifact it wrote before. The cache keeps
each finished artifact with its train.json and train_log.jsonl under $DRIFTLAB_HOME/train-cache/<key>/; a hit copies
them into the new run dir instead of training (a warm study re-run then costs seconds, not minutes). `train.cache:
false` or `--no-cache` trains anyway. Multi-process runs neither read nor write the cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

from driftlab.models import driftlab_home


SCHEMA = 1  # bump when what a cache entry holds changes


def cache_key(model_fingerprint: str, model_cfg: dict, train_cfg: dict, train_set: list[dict], seed: int,
              device: str, resolved: dict) -> str:
    """`resolved`: settings decided at train time from the machine (bf16, Liger) — part of what was trained. The
    source of driftlab's training code is part of the key too, so an edited recipe never reuses an old artifact."""
    import peft
    import torch
    import transformers
    import trl

    # Only logging destinations stay out of the key: everything else (save_steps too: it sets the held-out
    # evaluation steps that early stopping and the best-checkpoint choice depend on) can change the weights.
    cfg = {k: v for k, v in train_cfg.items()
           if k not in ("report_to", "logging_steps", "cache", "probe_items", "probe_suites")}  # how points are measured
    code = hashlib.sha256()  # the training code, and what GRPO's rewards judge with
    package = Path(__file__).parent.parent
    for path in sorted(Path(__file__).parent.rglob("*.py")) + [package / "models.py", package / "artifacts.py",
                                                                package / "eval/extract.py", package / "eval/scoring.py"]:
        code.update(path.read_bytes())
    blob = json.dumps({"schema": SCHEMA, "model": model_fingerprint, "model_cfg": model_cfg, "train": cfg,
                       "seed": seed, "device": device, "resolved": resolved, "train_set": train_set,
                       "code": code.hexdigest(),
                       "versions": [torch.__version__, transformers.__version__, trl.__version__, peft.__version__]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _dir(key: str) -> Path:
    return driftlab_home() / "train-cache" / key


def lookup(key: str, artifact_name: str, out_dir: Path) -> dict | None:
    """On a hit: the artifact and logs copied into out_dir, and the cached summary pointing at the copy. An entry
    that cannot be read whole (removed files, a full disk) is a miss, and nothing of it is left in out_dir."""
    src = _dir(key)
    if not (src / "train.json").exists():
        return None
    try:
        summary = json.loads((src / "train.json").read_text())
        shutil.copytree(src / artifact_name, out_dir / artifact_name)
        shutil.copy2(src / "train_log.jsonl", out_dir / "train_log.jsonl")
        if (src / "snapshots").is_dir():  # train.probe_every: the fine-tune every N steps
            shutil.copytree(src / "snapshots", out_dir / "snapshots")
    except (OSError, ValueError):
        shutil.rmtree(out_dir / artifact_name, ignore_errors=True)
        shutil.rmtree(out_dir / "snapshots", ignore_errors=True)
        (out_dir / "train_log.jsonl").unlink(missing_ok=True)
        return None
    return {**summary, "artifact": str(out_dir / artifact_name),
            "cache": {"key": key, "hit": True, "trained_wall_s": summary["wall_s"]}}


def store(key: str, out_dir: Path, artifact: Path, summary: dict) -> None:
    """Copy a finished run into the cache: written under a temporary name, then renamed (readers never see half).
    The cache is optional: any failure (read-only or full $DRIFTLAB_HOME, a concurrent writer) leaves it as it was."""
    dest = _dir(key)
    if dest.exists():
        return
    tmp = dest.parent / f".{key}.{uuid.uuid4().hex}"
    try:
        tmp.mkdir(parents=True)
        shutil.copytree(artifact, tmp / artifact.name)
        shutil.copy2(out_dir / "train_log.jsonl", tmp / "train_log.jsonl")
        if (out_dir / "snapshots").is_dir():
            shutil.copytree(out_dir / "snapshots", tmp / "snapshots")
        (tmp / "train.json").write_text(json.dumps(summary, indent=2, default=str))
        tmp.rename(dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
