"""The report's plots (plotly figures), each from the typed study: accuracy per suite, paired differences,
strategies × models, error taxonomy, training loss, early answering, and the gain-vs-retention Pareto plot."""

from __future__ import annotations

import plotly.graph_objects as go

from driftlab.compare.stats import wilson_interval
from driftlab.report.colours import SUITE_COLORS, variant_colour
from driftlab.report.tables import strategy_rows
from driftlab.schema import ProbeResults, Study, SweepPoint



def accuracy_figure(study: Study) -> go.Figure:
    """Base and each variant per suite, with Wilson 95% intervals and the suite's chance level."""
    suites = [s.name for s in study.suites]
    fig = go.Figure()
    series = [("base", {s.name: (s.base_metrics["accuracy"], s.n) for s in study.suites})]
    for name in study.variant_names():
        series.append((name, {r.suite: (r.tuned_acc, r.n) for r in study.rows(name)}))
    for name, accs in series:
        ys, ns = zip(*(accs.get(s, (0.0, 0)) for s in suites))
        fig.add_bar(name=name, x=suites, y=ys, marker_color=variant_colour(study.variant_names(), name),
                    error_y=_wilson_bars(ys, ns))
    fig.add_scatter(name="chance", x=suites, y=[s.chance for s in study.suites], mode="markers",
                    marker={"symbol": "line-ew-open", "size": 40, "color": "#333"})
    fig.update_layout(title="Accuracy per suite (95% Wilson intervals; dash = chance)", barmode="group",
                      yaxis={"range": [0, 1.05], "tickformat": ".0%"}, height=420)
    return fig


def steps_figure(study: Study, family: str) -> go.Figure:
    """A multi-step family: accuracy against the number of terms, base and each variant, with Wilson 95% intervals
    and the chance level of each step count (the paired rows, with their CIs, are in the per-suite table)."""
    suites = sorted((s for s in study.suites if s.family == family and s.key.zero_shot), key=lambda s: s.terms)
    fig = go.Figure()
    series = [("base", {s.name: s.base_metrics["accuracy"] for s in suites})]
    series += [(name, {r.suite: r.tuned_acc for r in study.rows(name)}) for name in study.variant_names()]
    xs = [s.terms for s in suites]
    for name, accs in series:
        ys = [accs.get(s.name) for s in suites]
        fig.add_scatter(name=name, x=xs, y=ys, mode="lines+markers",
                        line={"color": variant_colour(study.variant_names(), name)},
                        error_y=_wilson_bars(ys, [s.n for s in suites]))
    fig.add_scatter(name="chance", x=xs, y=[s.chance for s in suites], mode="lines",
                    line={"dash": "dot", "color": "#333"})
    fig.update_layout(title=f"{family}: accuracy by number of terms (95% Wilson intervals; dotted = chance)",
                      xaxis={"title": "terms", "tickvals": xs}, yaxis={"range": [0, 1.05], "tickformat": ".0%"},
                      height=380)
    return fig


def _wilson_bars(accs, ns) -> dict:
    """Asymmetric error bars of each accuracy's Wilson 95% interval (an accuracy of None: no bar)."""
    lo, hi = [], []
    for acc, n in zip(accs, ns):
        a, b = wilson_interval(round(acc * n), n) if acc is not None else (0.0, 0.0)
        lo.append((acc or 0.0) - a)
        hi.append(b - (acc or 0.0))
    return {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}


def diff_figure(study: Study) -> go.Figure:
    """Tuned minus base per suite, with the paired bootstrap 95% CI; the variants of one suite side by side
    (dodged), not on top of each other."""
    fig = go.Figure()
    names = study.variant_names()
    for name in names:
        rows = study.rows(name)
        fig.add_scatter(name=name, x=[100 * r.diff for r in rows], y=[r.suite for r in rows], orientation="h",
                        offsetgroup=name, mode="markers", marker={"size": 10, "color": variant_colour(names, name)},
                        error_x={"type": "data", "symmetric": False,
                                 "array": [100 * (r.ci95[1] - r.diff) for r in rows],
                                 "arrayminus": [100 * (r.diff - r.ci95[0]) for r in rows]})
    fig.add_vline(x=0, line_dash="dash", line_color="#888")
    fig.update_layout(title="Tuned − base, percentage points (paired bootstrap 95% CI)", scattermode="group",
                      scattergap=0.4, xaxis_title="difference (points)", yaxis={"autorange": "reversed"},
                      height=120 + (30 + 14 * len(names)) * len(study.suites))
    return fig


def loss_figure(train_logs: dict[str, list[dict]], variants: list[str] | None = None) -> go.Figure:
    fig = go.Figure()
    names = variants or list(train_logs)  # the study's variants, in its order: their colours elsewhere
    for name, rows in train_logs.items():
        pts = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        fig.add_scatter(name=name, x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                        line={"color": variant_colour(names, name)})
        held = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
        if held:
            fig.add_scatter(name=f"{name} (held-out)", x=[p[0] for p in held], y=[p[1] for p in held],
                            mode="lines+markers", line={"color": variant_colour(names, name), "dash": "dot"})
    fig.update_layout(title="Training loss (completion tokens)", xaxis_title="step", yaxis_title="loss", height=360)
    return fig


def reward_figure(train_logs: dict[str, list[dict]], variants: list[str] | None = None) -> go.Figure:
    """GRPO runs: mean reward per step, and the share of groups whose rewards were all equal (no learning signal)."""
    fig = go.Figure()
    for name, rows in train_logs.items():
        pts = [(r["step"], r["reward"]) for r in rows if r.get("reward") is not None]
        if not pts:
            continue
        color = variant_colour(variants or list(train_logs), name)
        fig.add_scatter(name=f"{name}: reward", x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                        line={"color": color})
        flat = [(r["step"], r["frac_reward_zero_std"]) for r in rows if r.get("frac_reward_zero_std") is not None]
        fig.add_scatter(name=f"{name}: groups without signal", x=[p[0] for p in flat], y=[p[1] for p in flat],
                        mode="lines", line={"color": color, "dash": "dot"})
    fig.update_layout(title="GRPO: mean reward per step (dotted: share of groups whose rewards were all equal)",
                      xaxis_title="step", yaxis_title="reward / share", height=360)
    return fig


def trajectory_figure(name: str, trajectory: dict) -> go.Figure:
    """One fine-tune over training: accuracy on each probe suite (95% Wilson bands), format entropy of the target
    replies (bits) and KL drift from the base, against steps (step 0 = the base)."""
    from plotly.subplots import make_subplots

    points = trajectory["points"]
    steps = [p["step"] for p in points]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy (95% Wilson)", "format entropy (bits) and KL"))
    for k, suite in enumerate(trajectory["suites"]):
        color = SUITE_COLORS[k % len(SUITE_COLORS)]
        acc = [p["suites"][suite]["accuracy"] for p in points]
        lo = [p["suites"][suite]["ci95"][0] for p in points]
        hi = [p["suites"][suite]["ci95"][1] for p in points]
        fig.add_scatter(x=steps + steps[::-1], y=hi + lo[::-1], fill="toself", line={"width": 0}, opacity=0.2,
                        fillcolor=color, showlegend=False, hoverinfo="skip", row=1, col=1)
        fig.add_scatter(name=suite, x=steps, y=acc, mode="lines+markers", line={"color": color}, row=1, col=1)
    fig.add_scatter(name="format entropy", x=steps, y=[p["format_entropy"] for p in points], mode="lines+markers",
                    line={"color": "#555"}, row=1, col=2)
    fig.add_scatter(name="KL from base", x=steps, y=[p["kl"] for p in points], mode="lines+markers",
                    line={"color": "#555", "dash": "dot"}, row=1, col=2)
    items = ", ".join(f"{s}: {n} items" for s, n in trajectory["items"].items())
    fig.update_layout(title=f"{name} over training ({items}; colours here are suites, not models)",
                      height=380)
    fig.update_xaxes(title_text="step")
    return fig


def early_answer_figure(probes: ProbeResults) -> go.Figure:
    fig = go.Figure()
    runs = {"base": probes.base, **probes.variants}
    for name, run in runs.items():
        curve = run["probes"]["faithfulness"]["early_answer_curve"]
        pts = [(float(f), v) for f, v in curve.items() if v is not None]
        fig.add_scatter(name=name, x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                        line={"color": variant_colour(list(probes.variants), name)})
    fig.update_layout(title="Early answering: same answer as with the full chain, by fraction of the chain kept",
                      xaxis_title="fraction of the CoT kept", yaxis_title="share same answer", yaxis_range=[0, 1.05],
                      height=360)
    return fig


def strategy_heatmap(study: Study) -> go.Figure:
    """Accuracy per prompting strategy (rows) and model (columns)."""
    rows = strategy_rows(study)
    models = list(dict.fromkeys(r["model"] for r in rows))
    labels = list(dict.fromkeys(f"{r['suite']} · {r['strategy']}" for r in rows))
    cell = {(f"{r['suite']} · {r['strategy']}", r["model"]): r["accuracy"] for r in rows}
    z = [[cell.get((label, m)) for m in models] for label in labels]
    fig = go.Figure(go.Heatmap(z=z, x=models, y=labels, colorscale="Blues", zmin=0, zmax=1,
                               text=[[f"{v:.0%}" if v is not None else "" for v in row] for row in z],
                               texttemplate="%{text}", colorbar={"tickformat": ".0%"}))
    fig.update_layout(title="Accuracy by prompting strategy × model", height=120 + 40 * len(labels))
    return fig


def error_figure(study: Study) -> go.Figure:
    """Error-taxonomy rates on the target's zero-shot replies, base and every variant."""
    target = next(s for s in study.suites if s.role == "target")
    series = [("base", target.base_metrics.get("errors") or {})]
    series += [(v.name, (v.eval.get(target.name) or {}).get("errors") or {}) for v in study.variants]
    from driftlab.eval.taxonomy import TAGS

    found = {t for _, errs in series for t in errs}  # in the taxonomy's order; a tag of an older run at the end
    tags = [t for t in TAGS if t in found] + sorted(found - set(TAGS))
    fig = go.Figure()
    for name, errs in series:
        fig.add_bar(name=name, x=tags, y=[errs.get(t, 0.0) for t in tags],
                    marker_color=variant_colour(study.variant_names(), name))
    fig.update_layout(title=f"Error taxonomy on {target.name} (share of replies per tag)", barmode="group",
                      yaxis={"range": [0, 1.05], "tickformat": ".0%"}, height=380)
    return fig


def pareto_figure(points: list[SweepPoint], variants: list[str] | None = None) -> go.Figure:
    """`variants`: the study's, in order, for the colours every other plot uses. α is in each point's hover and in
    the sweep table; printed beside the points, the labels of nearby points stacked."""
    fig = go.Figure()
    names = variants or list(dict.fromkeys(p.variant for p in points))
    for variant in dict.fromkeys(p.variant for p in points):
        pts = sorted((p for p in points if p.variant == variant), key=lambda p: p.alpha)
        fig.add_scatter(name=variant, x=[p.heldout_change for p in pts], y=[p.target_gain for p in pts],
                        mode="lines+markers", line={"color": variant_colour(names, variant)},
                        marker={"size": [6 + 8 * p.alpha for p in pts]}, text=[f"α={p.alpha:g}" for p in pts],
                        hovertemplate="%{text}<br>held-out %{x:+.1%}<br>target %{y:+.1%}",
                        error_x=_bars(pts, "heldout_change", "heldout_ci"),
                        error_y=_bars(pts, "target_gain", "target_ci"))
    front = sorted((p for p in points if p.frontier), key=lambda p: p.heldout_change)
    fig.add_scatter(name="frontier", x=[p.heldout_change for p in front], y=[p.target_gain for p in front],
                    mode="lines", line={"dash": "dot", "color": "#333"})
    fig.update_layout(title="Gain vs retention: target change against mean held-out change (not-at-floor suites), "
                      "fine-tunes scaled from base (α=0) to full (α=1); a bigger marker, a larger α",
                      xaxis_title="mean held-out change", yaxis_title="target change", xaxis_tickformat="+.0%",
                      yaxis_tickformat="+.0%", height=460)
    return fig


def _bars(pts: list[SweepPoint], key: str, ci: str) -> dict:
    """Asymmetric error bars from a point's CI (older sweep.json files have none)."""
    if any(getattr(p, ci) is None for p in pts):
        return {"visible": False}
    return {"type": "data", "symmetric": False, "thickness": 1, "width": 3,
            "array": [getattr(p, ci)[1] - getattr(p, key) for p in pts],
            "arrayminus": [getattr(p, key) - getattr(p, ci)[0] for p in pts]}


def pareto_html(points: list[SweepPoint]) -> str:
    """`driftlab sweep`'s page: the Pareto plot and the sweep's table (the terminal's columns, changes in points),
    self-contained. plotly.js is inlined: 4.8 MB of a 4.8 MB page, but machines here are offline (no CDN)."""
    from html import escape

    from plotly.offline import get_plotlyjs

    from driftlab.report.terminal import SWEEP_COLUMNS, sweep_rows

    fig = pareto_figure(points).to_html(full_html=False, include_plotlyjs=False)
    head = "".join(f"<th>{escape(c)}</th>" for c in SWEEP_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in sweep_rows(points))
    style = ("body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse} "
             "th,td{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>driftlab sweep: gain vs retention</title>"
            f"<style>{style}</style><script>{get_plotlyjs()}</script></head><body>{fig}"
            f"<h2>Gain vs retention, points</h2><table><tr>{head}</tr>{body}</table></body></html>")
