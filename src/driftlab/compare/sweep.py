"""Scale sweep without retraining, and the gain-vs-retention Pareto (after Biderman et al. 2024, "LoRA Learns Less
and Forgets Less"). Each fine-tune is evaluated at scales α between the base model (α = 0) and itself (α = 1):
LoRA/DoRA through PEFT's `rescale_adapter_scale` before merging, SVF with z_α = 1 + α(z − 1), a full fine-tune by
WiSE-FT weight interpolation (1 − α)·W_base + α·W_tuned. Each point is (mean change on the held-out suites that are
not at their floor, change on the target); a point is on the frontier when no other point has at least its gain
and at least its retention, one of them strictly better.
"""

from __future__ import annotations

from pathlib import Path

import torch

from driftlab.models import ResolvedModel, fingerprint_dir, load_model, load_pretrained, pick_device, save_checkpoint
from driftlab.train.svf import apply_expert, is_expert, load_expert


@torch.no_grad()
def interpolate(model: ResolvedModel, artifact: Path, alpha: float, dtype: str = "auto", device: str = "auto"):
    """(model, tokenizer) at scale alpha of the fine-tune in `artifact` (see models.find_artifact)."""
    from driftlab.models import find_artifact

    artifact = find_artifact(artifact)
    if is_expert(artifact):
        lm, tok = load_model(model, dtype, device)
        z = {name: 1 + alpha * (v - 1) for name, v in load_expert(artifact).items()}
        return apply_expert(lm, z), tok
    if (artifact / "adapter_config.json").exists():
        from peft import PeftModel
        from peft.helpers import rescale_adapter_scale

        lm, tok = load_model(model, dtype, device)
        peft_model = PeftModel.from_pretrained(lm, str(artifact))
        with rescale_adapter_scale(peft_model, alpha):
            merged = peft_model.merge_and_unload()
        return merged.eval(), tok
    base, tok = load_pretrained(model, dtype, pick_device(device))
    tuned, _ = load_pretrained(ResolvedModel(model.name, str(artifact), ""), dtype, pick_device(device))
    tuned_params = dict(tuned.named_parameters())
    for name, p in base.named_parameters():  # WiSE-FT
        p.copy_((1 - alpha) * p + alpha * tuned_params[name])
    return base.to(pick_device(device)).eval(), tok


def save_interpolated(model: ResolvedModel, artifact: Path, alpha: float, out_dir: Path) -> ResolvedModel:
    """The interpolated model as an ordinary checkpoint, so the eval, its results store and its fingerprints apply
    unchanged."""
    save_checkpoint(*interpolate(model, artifact, alpha), out_dir)
    return ResolvedModel(f"{model.name}@{alpha}", str(out_dir), fingerprint_dir(out_dir))


def point(base_suites: dict, tuned_suites: dict, roles: dict, floors: dict) -> dict:
    """(target change, mean held-out change over suites not at floor) between two zero-shot eval summaries."""
    target = [n for n, r in roles.items() if r == "target"]
    held = [n for n, r in roles.items() if r == "heldout" and not floors.get(n)]
    diff = {n: tuned_suites[n]["accuracy"] - base_suites[n]["accuracy"] for n in target + held}
    return {"target_gain": sum(diff[n] for n in target) / len(target),
            "heldout_change": sum(diff[n] for n in held) / len(held) if held else 0.0,
            "suites": diff}


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
                        mode="lines+markers+text", text=[f"α={p['alpha']:g}" for p in pts], textposition="top center")
    front = sorted((p for p in points if p["frontier"]), key=lambda p: p["heldout_change"])
    fig.add_scatter(name="frontier", x=[p["heldout_change"] for p in front], y=[p["target_gain"] for p in front],
                    mode="lines", line={"dash": "dot", "color": "#333"})
    fig.update_layout(title="Gain vs retention: target change against mean held-out change (not-at-floor suites), "
                      "fine-tunes scaled from base (α=0) to full (α=1)", xaxis_title="mean held-out change",
                      yaxis_title="target change", xaxis_tickformat="+.0%", yaxis_tickformat="+.0%", height=460)
    return fig
