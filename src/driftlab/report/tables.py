"""The report's tables, built once from the typed study and shared by report.md and report.html: rows as dicts
(strategies, training) and whole sections as markdown lines (gate, sweep, probes), which report.html renders too,
so both reports say the same."""

from __future__ import annotations

from pathlib import Path

from driftlab.schema import Study


def gate_lines(study: Study) -> list[str]:
    """The gate's result and every violated check (the study applies the config's gate rules, as `driftlab gate`)."""
    gate = study.gate
    if gate is None:
        return []
    failed = [c for c in gate.checks if not c.passed]
    lines = ["", f"Gate ({len(gate.rules)} rules, {len(gate.checks)} checks): "
             f"**{'FAILED' if failed else 'passed'}**" + ("" if failed else ".")]
    for c in failed:  # the reason states the numbers, in points (a probe metric: in its unit)
        lines.append(f"- {c.variant}: rule {c.rule} on `{c.subject}`: {c.why}")
    return lines


def sweep_table(study: Study) -> list[str]:
    sweep = study.sweep
    if not sweep:
        return []
    items = ", ".join(f"{n} {k}" for n, k in sweep.items.items())
    lines = ["## Gain vs retention (scale sweep)", "",
             f"Each fine-tune evaluated zero-shot at scales α between the base (α=0) and itself (α=1) without "
             f"retraining (LoRA scale, SVF z, WiSE-FT for full weights), on {items} items. Held-out change: mean over "
             f"the held-out suites not at their floor. CIs: {sweep.confidence:.0%} stratified paired bootstrap "
             f"({sweep.n_bootstrap} resamples). Frontier: no other point gains at least as much and retains at "
             "least as much.", "",
             "| variant | α | target change (pts) | 95% CI | held-out change (pts) | 95% CI | frontier |",
             "|---|---:|---:|---|---:|---|---|"]
    for p in sweep.points:
        lines.append(f"| {p.variant} | {p.alpha:g} | {pts(p.target_gain)} | {_ci(p.target_ci)} | "
                     f"{pts(p.heldout_change)} | {_ci(p.heldout_ci)} | {'yes' if p.frontier else ''} |")
    return lines + [""]


def training_rows(study: Study) -> list[dict]:
    """One row per variant: what it trained (method, trainable parameters, replay) and how the run went."""
    rows = []
    for v in study.variants:
        t = v.train
        mix = (t.get("mix") or {}).get("sources") or {}
        rows.append({"variant": v.name, "method": t["method"], "trainable": t["trainable_params"],
                     "fraction": t["trainable_fraction"], "steps": t["steps"], "tokens": t["tokens"],
                     "tokens_per_s": t["tokens_per_s"], "first_loss": num(t["first_loss"]),
                     "final_loss": num(t["final_loss"]), "wall_s": t["wall_s"],
                     "cached": bool((t.get("cache") or {}).get("hit")),  # copied from the train cache, not run now
                     "mix": ", ".join(f"{k} ({m['items']} items)" for k, m in mix.items()) or "none",
                     "targets": grpo_text(t) if t.get("objective") == "grpo" else
                     targets_text((t.get("mix") or {}).get("chains"))})
    return rows


def grpo_text(train: dict) -> str:
    """What a GRPO run was rewarded for and whether the reward rose (first vs last steps, bootstrap CI)."""
    cfg, g = train["config"], train.get("grpo")
    rewards = " + ".join(f"{r['weight']:g}×{r['name']}" for r in cfg["grpo"]["rewards"])
    start = f" from {Path(cfg['init_from']).name}" if cfg.get("init_from") else ""
    if not g:
        return f"GRPO{start}, reward {rewards}"
    zero = f"; {g['zero_std_groups']:.0%} of groups without signal" if g.get("zero_std_groups") is not None else ""
    each = ""
    if len(cfg["grpo"]["rewards"]) > 1 and g.get("by_function"):
        each = " (each function, unweighted: " + "; ".join(f"{name} {_rise_text(r)}"
                                                          for name, r in g["by_function"].items()) + ")"
    return f"GRPO{start}, reward {rewards}: first {g['k']} → last {g['k']} steps {_rise_text(g)}{each}{zero}"


def _rise_text(r: dict) -> str:
    lo, hi = r["gain_ci95"]
    verdict = "rose" if lo > 0 else "fell" if hi < 0 else "cannot tell a change"
    return f"{r['first']:.2f} → {r['last']:.2f} ({r['gain']:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}]: {verdict})"


def trajectory_lines(study: Study) -> list[str]:
    """The points over training of every variant that kept them (train.probe_every), as a table."""
    lines = []
    for v in study.variants:
        if not v.trajectory:
            continue
        t = v.trajectory
        suites = t["suites"]
        lines += [f"### `{v.name}` over training", "",
                  "Step 0 is where training started (the base, or the adapter it continued). Accuracy on the first "
                  "items of each suite (zero-shot, 95% Wilson interval), "
                  "the format entropy of the target replies (bits over format classes) and the KL drift from the base.",
                  "", "| step | " + " | ".join(f"{s} (n {t['items'][s]})" for s in suites) + " | format entropy | KL |",
                  "|---:|" + "---|" * len(suites) + "---:|---:|"]
        for p in t["points"]:
            accs = [f"{p['suites'][s]['accuracy']:.0%} [{p['suites'][s]['ci95'][0]:.0%}, "
                    f"{p['suites'][s]['ci95'][1]:.0%}]" for s in suites]
            kl = f"{p['kl']:.4f}" if p.get("kl") is not None else "–"
            lines.append(f"| {p['step']} | " + " | ".join(accs) + f" | {p['format_entropy']:.2f} | {kl} |")
        lines.append("")
    return lines


def targets_text(chains: dict | None) -> str:
    """What the variant was trained to write: answers, gold chains, or self-distilled chains with their yield."""
    if not chains:
        return "answers"
    if chains["source"] == "gold":
        return f"gold chains ({chains['rows']} rows)"
    dropped = ", ".join(f"{chains[k]} {label}" for k, label in [
        ("wrong", "wrong"), ("cut_by_budget", "cut by the budget"), ("no_chain", "without reasoning"),
        ("duplicates", "repeats"), ("over_cap", "over the cap")] if chains.get(k))
    return (f"self-distilled chains: kept {chains['kept']} of {chains['sampled']} sampled "
            f"({chains['yield_chains']:.1%}), {chains['questions_with_chain']} of {chains['questions']} questions "
            f"({chains['yield_questions']:.0%}); dropped {dropped or 'none'}")


def probe_table(study: Study) -> list[str]:
    from driftlab.probes import PROBES

    probes = study.probes
    if not probes:
        return []
    lines = ["## Probes", "", f"On the first {probes.base['items']} items of `{probes.base['suite']}`, paired "
             "per item, base vs tuned; CIs are paired bootstrap over items.", "",
             "| variant | probe | metric | n | base | tuned | diff | 95% CI | what it measures |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in probes.comparisons:
        metric = PROBES.get(r.probe).metric(r.metric) if r.probe in PROBES.names() else None
        meaning = f"{metric.meaning} ({metric.better} is better)" if metric and metric.better != "neither" else \
            (metric.meaning if metric else "")
        lines.append(f"| {r.variant} | {r.probe} | {r.metric} | {r.n} | {r.base:.3f} | {r.tuned:.3f} | "
                     f"{r.diff:+.3f} | [{r.ci95[0]:+.3f}, {r.ci95[1]:+.3f}] | {meaning} |")
    runs = {"base": probes.base, **probes.variants}
    fractions = list(probes.base["probes"].get("faithfulness", {}).get("early_answer_curve", {}))
    lines += ["", "Early answering (share of forced answers equal to the full-CoT answer, by fraction of the chain "
              "kept), the format classes of the sampled replies, and each probe's cost:", "",
              "| model | chain present | " + " | ".join(f"f={f}" for f in fractions) +
              " | sample formats | probe seconds |", "|---|---:|" + "---:|" * len(fractions) + "---|---|"]
    for name, run in runs.items():
        f = run["probes"].get("faithfulness", {})
        curve = f.get("early_answer_curve", {})
        shares = run["probes"].get("diversity", {}).get("format_shares", {})
        formats = ", ".join(f"{k} {pct(v)}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])) or "n/a"
        secs = ", ".join(f"{k} {v:.0f}" for k, v in run["timings_s"].items())
        lines.append(f"| {name} | {pct(f.get('chain_rate', 0))} | " + " | ".join(
            pct(curve[k]) if curve.get(k) is not None else "n/a" for k in fractions) +
            f" | {formats} | {secs} |")
    return lines + [""]


def strategy_rows(study: Study) -> list[dict]:
    """One row per (suite, strategy, model) for suites evaluated under more than one strategy."""
    multi = {s.key.suite for s in study.suites if not s.key.zero_shot}
    rows = []
    for suite in study.suites:
        if suite.key.suite not in multi:
            continue
        cell = {"suite": suite.key.suite, "strategy": suite.key.strategy}
        rows.append({**cell, "model": "base", **_strategy_cells(suite.base_metrics, suite.key.strategy)})
        for v in study.variants:
            if v.eval.get(suite.name):
                rows.append({**cell, "model": v.name, **_strategy_cells(v.eval[suite.name], suite.key.strategy)})
    return rows


def strategy_table(study: Study) -> list[str]:
    rows = strategy_rows(study)
    if not rows:
        return []
    lines = ["## Strategies × variants", "", "| suite | strategy | model | accuracy | format | latency p50 (s) | "
             "tokens/s | the strategy's own metrics |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['strategy']} | {r['model']} | {pct(r['accuracy'])} | {pct(r['format'])} | "
                     f"{num(r['latency'])} | {num(r['tokens_per_s'], 0)} | {r['own']} |")
    return lines + [""]


def _strategy_cells(m: dict, strategy: str) -> dict:
    """A suite's metrics under one strategy; `own`: the metrics that strategy declares (its registry entry), e.g.
    self-consistency's agreement with the vote."""
    from driftlab.eval.strategies import STRATEGIES

    declared = STRATEGIES.get(strategy).metrics if strategy in STRATEGIES.names() else ()
    own = ", ".join(f"{d.name} {m[d.name]:.2f}" if isinstance(m[d.name], float) else f"{d.name} {m[d.name]}"
                    for d in declared if m.get(d.name) is not None)
    return {"accuracy": m["accuracy"], "format": m["format_rate"], "latency": m.get("latency_p50_s"),
            "tokens_per_s": m.get("tokens_per_s"), "own": own}


def _ci(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"[{pts(ci[0])}, {pts(ci[1])}]"


def num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    return f"{100 * x:+.1f}"
