"""Items whose verdict flipped between base and a variant (right→wrong, wrong→right), both outputs side by side:
what the report's sample browser shows. Read from the run's per-item eval JSONL."""

from __future__ import annotations

from pathlib import Path

from driftlab.runs import read_jsonl


def collect_flips(run_dir: Path, variants: list[str], per: int = 4) -> list[dict]:
    """Up to `per` items per (variant, suite, direction), in item order."""
    out = []
    base_dir = Path(run_dir) / "eval" / "base"
    for variant in variants:
        for path in sorted((Path(run_dir) / "eval" / variant).glob("*.jsonl")):
            base = {r["id"]: r for r in read_jsonl(base_dir / path.name)} if (base_dir / path.name).exists() else {}
            counts = {"right→wrong": 0, "wrong→right": 0}
            for t in read_jsonl(path):
                b = base.get(t["id"])
                if b is None or b["correct"] == t["correct"]:
                    continue
                direction = "right→wrong" if b["correct"] else "wrong→right"
                if counts[direction] >= per:
                    continue
                counts[direction] += 1
                out.append({"variant": variant, "suite": path.stem, "id": t["id"], "direction": direction,
                            "prompt": t["prompt"], "gold": t["gold"], "base_output": b["output"],
                            "base_extracted": b["extracted"], "tuned_output": t["output"],
                            "tuned_extracted": t["extracted"]})
    return out
