"""Scale sweep without retraining, and the gain-vs-retention Pareto (after Biderman et al. 2024, "LoRA Learns Less
and Forgets Less"). Each fine-tune is evaluated at scales α between the base model (α = 0) and itself (α = 1),
built in memory by models.load_model (LoRA/DoRA scaled before merging, SVF's z moved towards 1, a full fine-tune
interpolated with the base: WiSE-FT); no checkpoint is written, and a warm re-run loads nothing. Each point is
(mean change on the held-out suites that are not at their floor, change on the target); a point is on the frontier
when no other point has at least its gain and at least its retention, one of them strictly better.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftlab.compare.stats import grouped_bootstrap_ci
from driftlab.config import CompareConfig, StudyConfig, SweepConfig
from driftlab.models import ResolvedModel, find_artifact


def plan_sweep(cfg: StudyConfig, suites: dict[str, list[dict]], roles: dict[str, str], floors: dict[str, bool],
               variants: list[str], eval_root: Path, sweep: SweepConfig) -> tuple[dict[str, list[dict]], object]:
    """(items per swept suite, the zero-shot strategy to run) — checked before anything is computed: every swept
    suite must have base and tuned per-item results in eval_root covering those items (the endpoints)."""
    from driftlab.config import StrategyConfig
    from driftlab.errors import DataError
    from driftlab.runs import read_jsonl

    # The study's own zero-shot settings (token budget, stop strings, slice), so α = 0 and 1 match the middle.
    zero = next((s for s in cfg.eval.strategies if s.name == "zero_shot"), StrategyConfig(name="zero_shot"))
    limits = [n for n in (zero.limit, sweep.limit) if n is not None]
    limit = min(limits) if limits else None
    used = [n for n, r in roles.items() if (r == "target" or (r == "heldout" and not floors.get(n)))
            and (zero.suites is None or n in zero.suites or cfg.data.suite_configs()[n].mode == "loglik")]
    items = {n: suites[n][:limit] for n in used}
    for name in ["base", *variants]:
        for suite in used:
            path = eval_root / name / f"{suite}.jsonl"
            if not path.exists():
                raise DataError(f"{path}: missing; the sweep's endpoints are the study's own zero-shot evals")
            have = {r["id"] for r in read_jsonl(path)}
            missing = [it["id"] for it in items[suite] if it["id"] not in have]
            if missing:
                raise DataError(f"{path}: lacks {len(missing)} of the swept items (e.g. {missing[0]}); lower "
                                "sweep.limit to the study's zero-shot slice")
    return items, zero.model_copy(update={"limit": None, "suites": None})


def run_sweep(model: ResolvedModel, cfg: StudyConfig, suites: dict[str, list[dict]], roles: dict[str, str],
              floors: dict[str, bool], artifacts: dict[str, Path], eval_root: Path, out_dir: Path,
              sweep: SweepConfig) -> dict:
    """Evaluate every fine-tune (variant name -> artifact) zero-shot at each scale of `sweep` on the target and the
    held-out suites not at their floor (the only ones a point uses), and return the points, α = 0 and 1 taken from
    the base and tuned evals in eval_root/<name>/ on the same items. Writes <variant>@<α>/ evals and sweep.json."""
    from driftlab.eval import evaluate_model
    from driftlab.runs import read_jsonl, write_json

    items, zero = plan_sweep(cfg, suites, roles, floors, list(artifacts), eval_root, sweep)
    used = list(items)
    roles = {n: r for n, r in roles.items() if n in items}
    suite_cfgs = {n: c for n, c in cfg.data.suite_configs().items() if n in used}
    eval_cfg = cfg.eval.model_copy(update={"strategies": [zero]})

    def records(eval_dir: Path) -> dict[str, list[dict]]:
        return {n: read_jsonl(eval_dir / f"{n}.jsonl") for n in used}

    base = records(eval_root / "base")
    points = []
    for variant, artifact in artifacts.items():
        at = {0.0: base, 1.0: records(eval_root / variant)}
        for alpha in sweep.scales:
            evaluate_model(model, cfg.model, items, suite_cfgs, eval_cfg, out_dir / f"{variant}@{alpha:g}",
                           adapter=find_artifact(artifact), label=f"{variant} α={alpha:g}", scale=alpha)
            at[alpha] = records(out_dir / f"{variant}@{alpha:g}")
        for alpha in sorted(at):
            points.append({"variant": variant, "alpha": alpha,
                           **point(base, at[alpha], roles, floors, items, cfg.compare, cfg.seed)})
    for p, on in zip(points, frontier(points)):
        p["frontier"] = on
    result = {"scales": [0.0, *sweep.scales, 1.0], "limit": sweep.limit, "items": {n: len(v) for n, v in items.items()},
              "n_bootstrap": cfg.compare.n_bootstrap, "confidence": cfg.compare.confidence, "points": points}
    write_json(out_dir / "sweep.json", result)
    return result


def point(base: dict[str, list[dict]], other: dict[str, list[dict]], roles: dict, floors: dict,
          items: dict[str, list[dict]], cmp: CompareConfig, seed: int = 0) -> dict:
    """Target change and mean held-out change (suites not at floor) between two per-item evals, on the items of
    `items` only, each with a stratified paired bootstrap CI (items resampled within each suite)."""
    target = [n for n, r in roles.items() if r == "target"]
    held = [n for n, r in roles.items() if r == "heldout" and not floors.get(n)]
    diffs = {}
    for n in target + held:
        ids = [it["id"] for it in items[n]]
        b, o = ({r["id"]: float(bool(r["correct"])) for r in recs[n]} for recs in (base, other))
        diffs[n] = np.array([o[i] - b[i] for i in ids])
    out = {"target_gain": float(np.mean([diffs[n].mean() for n in target])),
           "target_ci": list(grouped_bootstrap_ci([diffs[n] for n in target], cmp.n_bootstrap, cmp.confidence, seed)),
           "heldout_change": float(np.mean([diffs[n].mean() for n in held])) if held else 0.0,
           "heldout_ci": (list(grouped_bootstrap_ci([diffs[n] for n in held], cmp.n_bootstrap, cmp.confidence, seed))
                          if held else [0.0, 0.0]),
           "suites": {n: float(d.mean()) for n, d in diffs.items()}}
    return out


def frontier(points: list[dict]) -> list[bool]:
    """Pareto-optimal flags: maximise both target_gain and heldout_change."""
    flags = []
    for p in points:
        dominated = any(q["target_gain"] >= p["target_gain"] and q["heldout_change"] >= p["heldout_change"]
                        and (q["target_gain"] > p["target_gain"] or q["heldout_change"] > p["heldout_change"])
                        for q in points)
        flags.append(not dominated)
    return flags


def pareto_figure(points: list[dict]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for variant in dict.fromkeys(p["variant"] for p in points):
        pts = sorted((p for p in points if p["variant"] == variant), key=lambda p: p["alpha"])
        fig.add_scatter(name=variant, x=[p["heldout_change"] for p in pts], y=[p["target_gain"] for p in pts],
                        mode="lines+markers+text", text=[f"α={p['alpha']:g}" for p in pts], textposition="top center",
                        error_x=_bars(pts, "heldout_change", "heldout_ci"), error_y=_bars(pts, "target_gain", "target_ci"))
    front = sorted((p for p in points if p["frontier"]), key=lambda p: p["heldout_change"])
    fig.add_scatter(name="frontier", x=[p["heldout_change"] for p in front], y=[p["target_gain"] for p in front],
                    mode="lines", line={"dash": "dot", "color": "#333"})
    fig.update_layout(title="Gain vs retention: target change against mean held-out change (not-at-floor suites), "
                      "fine-tunes scaled from base (α=0) to full (α=1)", xaxis_title="mean held-out change",
                      yaxis_title="target change", xaxis_tickformat="+.0%", yaxis_tickformat="+.0%", height=460)
    return fig


def _bars(pts: list[dict], key: str, ci: str) -> dict:
    """Asymmetric error bars from a point's CI (older sweep.json files have none)."""
    if not all(ci in p for p in pts):
        return {"visible": False}
    return {"type": "data", "symmetric": False, "thickness": 1, "width": 3,
            "array": [p[ci][1] - p[key] for p in pts], "arrayminus": [p[key] - p[ci][0] for p in pts]}


def pareto_html(points: list[dict]) -> str:
    """The Pareto plot alone, as one self-contained page (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    fig = pareto_figure(points).to_html(full_html=False, include_plotlyjs=False)
    return (f"<!doctype html><html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script></head><body>{fig}"
            "</body></html>")
