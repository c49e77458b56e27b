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


def cache_key(model_fingerprint: str, model_cfg: dict, train_cfg: dict, train_set: list[dict], seed: int,
              device: str) -> str:
    import peft
    import torch
    import transformers
    import trl

    # Settings that change neither the weights nor the data order are left out of the key.
    cfg = {k: v for k, v in train_cfg.items() if k not in ("report_to", "logging_steps", "save_steps", "cache")}
    blob = json.dumps({"model": model_fingerprint, "model_cfg": model_cfg, "train": cfg, "seed": seed,
                       "device": device, "train_set": train_set,
                       "versions": [torch.__version__, transformers.__version__, trl.__version__, peft.__version__]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _dir(key: str) -> Path:
    return driftlab_home() / "train-cache" / key


def lookup(key: str, artifact_name: str, out_dir: Path) -> dict | None:
    """On a hit: the artifact and logs copied into out_dir, and the cached summary pointing at the copy."""
    src = _dir(key)
    if not (src / "train.json").exists():
        return None
    shutil.copytree(src / artifact_name, out_dir / artifact_name)
    shutil.copy2(src / "train_log.jsonl", out_dir / "train_log.jsonl")
    summary = json.loads((src / "train.json").read_text())
    return {**summary, "artifact": str(out_dir / artifact_name), "cache": {"key": key, "hit": True,
                                                                         "trained_wall_s": summary["wall_s"]}}


def store(key: str, out_dir: Path, artifact: Path, summary: dict) -> None:
    """Copy a finished run into the cache: written under a temporary name, then renamed (readers never see half)."""
    dest = _dir(key)
    if dest.exists():
        return
    tmp = dest.parent / f".{key}.{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        shutil.copytree(artifact, tmp / artifact.name)
        shutil.copy2(out_dir / "train_log.jsonl", tmp / "train_log.jsonl")
        (tmp / "train.json").write_text(json.dumps(summary, indent=2, default=str))
        tmp.rename(dest)
    except OSError:  # another process stored the same key first, or the disk is full: the cache is optional
        shutil.rmtree(tmp, ignore_errors=True)
