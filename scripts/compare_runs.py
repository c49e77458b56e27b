"""Compare two study run dirs item by item: every per-item JSONL (eval, probes, sweep), the training losses, the
paired statistics, probe comparisons, sweep points and gate checks. Wall-clock fields (latency, tokens/s, timings,
timestamps, paths) are left out; everything else must be equal. Exit 1 on any difference.

    python scripts/compare_runs.py runs/<a> runs/<b>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VOLATILE = {"latency_s", "latency_p50_s", "latency_p95_s", "tokens_per_s", "time", "wall_s", "timings_s", "run_dir",
            "artifact", "adapter", "peak_memory_mb", "cached", "cache", "fingerprint", "trained_wall_s"}


def clean(value):
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def rows(path: Path) -> list:
    return [clean(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(a: Path, b: Path) -> int:
    differ, same = [], 0
    files = sorted(p.relative_to(a) for sub in ("eval", "probes", "sweep") for p in (a / sub).rglob("*.jsonl"))
    others = sorted(p.relative_to(b) for sub in ("eval", "probes", "sweep") for p in (b / sub).rglob("*.jsonl"))
    if files != others:
        differ.append(f"per-item files differ: {sorted(set(map(str, files)) ^ set(map(str, others)))}")
    for rel in files:
        if (b / rel).exists() and rows(a / rel) != rows(b / rel):
            differ.append(str(rel))
        else:
            same += 1
    for log in sorted((a / "train").glob("*/train_log.jsonl")):
        keys = ("step", "loss", "grad_norm", "learning_rate", "tokens_seen")
        la = [{k: r.get(k) for k in keys} for r in rows(log)]
        lb = [{k: r.get(k) for k in keys} for r in rows(b / log.relative_to(a))]
        if la != lb:
            differ.append(str(log.relative_to(a)))
        else:
            same += 1
    sa, sb = (json.loads((run / "study.json").read_text()) for run in (a, b))
    for key in ("comparisons", "suites", "sweep", "gate"):
        if clean(sa.get(key)) != clean(sb.get(key)):
            differ.append(f"study.json {key}")
        else:
            same += 1
    pa, pb = sa.get("probes") or {}, sb.get("probes") or {}
    if clean(pa.get("comparisons")) != clean(pb.get("comparisons")):
        differ.append("study.json probes.comparisons")
    else:
        same += 1
    for name in [v["name"] for v in sa["variants"]]:
        ta = next(v for v in sa["variants"] if v["name"] == name)
        tb = next(v for v in sb["variants"] if v["name"] == name)
        keys = ("steps", "tokens", "first_loss", "final_loss", "train_loss", "trainable_params")
        if {k: ta["train"][k] for k in keys} != {k: tb["train"][k] for k in keys} or \
                clean(ta["eval"]) != clean(tb["eval"]):
            differ.append(f"study.json variant {name}")
        else:
            same += 1
    print(f"{same} equal, {len(differ)} different")
    for d in differ:
        print("  differs:", d)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
