"""Probes over training time (train.probe_every): the fine-tune kept every N steps (train/callbacks.py
SnapshotCallback), each point measured on the same small slices — zero-shot accuracy on the probe suites (with a
Wilson interval), the format entropy of the target replies (bits over format classes across items: a fine-tune that
makes every reply the same shape drives it to 0) and the drift probe's KL from the base — so the report can show
when the format collapses and when forgetting starts, not only where training ended.

Every point goes through the ordinary eval and probe code behind the results store (a snapshot is keyed by its
weights), so a warm re-run recomputes nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from driftlab.compare.stats import wilson_interval
from driftlab.config import EvalConfig, ProbesConfig, SuiteConfig
from driftlab.models import ModelUnderTest
from driftlab.runs import read_jsonl, write_json

DRIFT_PROMPTS = 10  # general prompts for the KL at each point (the drift probe's, fewer: it runs at every point)


def snapshots(train_dir: Path) -> list[tuple[int, Path]]:
    """(step, artifact dir) of every kept point, in step order."""
    found = [(int(p.name.split("-")[1]), p) for p in (Path(train_dir) / "snapshots").glob("step-*") if p.is_dir()]
    return sorted(found)


def measure(base: ModelUnderTest, points: list[tuple[int, Path | None]], slices: dict[str, list[dict]],
            suite_cfgs: dict[str, SuiteConfig], target: str, eval_cfg: EvalConfig, out_dir: Path) -> dict:
    """One row per point (step 0: where training started; artifact None = the base): accuracy per probe suite,
    format entropy of the target replies, KL from the base."""
    from driftlab.eval import evaluate_model
    from driftlab.probes.diversity import entropy, format_class
    from driftlab.probes.run import run_probes

    from driftlab.eval.strategies import zero_shot_config

    zero_shot = eval_cfg.model_copy(update={"strategies": [zero_shot_config()]})
    drift_cfg = ProbesConfig.model_validate({"run": ["drift"], "limit": 1, "drift_prompts": DRIFT_PROMPTS})
    rows = []
    for step, artifact in points:
        model = base if artifact is None else base.tuned(artifact)
        point_dir = Path(out_dir) / f"step-{step:05d}"
        summary = evaluate_model(model, slices, suite_cfgs, zero_shot, point_dir, label=f"step {step}")
        row = {"step": step, "artifact": str(artifact) if artifact else None, "suites": {}}
        for name, items in slices.items():
            m = summary["suites"][name]
            lo, hi = wilson_interval(m["correct"], m["n"])
            row["suites"][name] = {"n": m["n"], "correct": m["correct"], "accuracy": m["accuracy"], "ci95": [lo, hi]}
        replies = [r["output"] for r in read_jsonl(point_dir / f"{target}.jsonl")]
        row["format_entropy"] = entropy([format_class(t) for t in replies])
        row["formats"] = dict(Counter(format_class(t) for t in replies))
        drift = run_probes(model, eval_cfg, drift_cfg, suite_cfgs[target], slices[target], [], point_dir / "drift")
        row["kl"] = drift["probes"]["drift"].get("kl")
        rows.append(row)
    result = {"target": target, "suites": list(slices), "items": {k: len(v) for k, v in slices.items()},
              "points": rows}
    write_json(Path(out_dir) / "trajectory.json", result)
    return result
