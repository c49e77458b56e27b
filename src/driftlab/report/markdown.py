"""report.md: the study's verdict and tables, for terminals and pull requests."""

from __future__ import annotations


ALPHA = 0.05


def verdict(row: dict, role: str) -> str:
    """One word per comparison. 'gained'/'lost' need both the bootstrap CI to exclude zero and the exact McNemar
    test to reject (the percentile bootstrap is optimistic when only a handful of items flipped). A floor suite
    cannot show a loss, so it gets no verdict beyond that."""
    lo, hi = row["ci95"]
    if row["floor"] and role != "target":
        return "at floor (base ≈ chance): not interpretable"
    if lo > 0 and row["mcnemar_p"] < ALPHA:
        return "gained"
    if hi < 0 and row["mcnemar_p"] < ALPHA:
        return "lost"
    return "no significant change"


def render_markdown(study: dict) -> str:
    roles = {s["name"]: s["role"] for s in study["suites"]}
    lines = [f"# driftlab study: {study['name']}", ""]
    lines += [f"Model: `{study['model']['name']}` (fingerprint `{study['model']['fingerprint']}`), "
              f"seed {study['seed']}, run `{study['run_dir']}`.", ""]
    lines += ["## Verdict", ""]
    for v in variant_summary(study):
        lines.append(f"- **{v['variant']}** — gained: {', '.join(v['gained']) or 'none'}; lost: "
                     f"{', '.join(v['lost']) or 'none'}; gate: {v['gate']}")
    lines += ["", "(gained/lost: per suite × strategy, CI excluding 0 and McNemar p < 0.05, not corrected for "
              "multiple comparisons — the Benjamini-Hochberg p of each row is in the table below.)"]
    lines += gate_lines(study)
    lines += ["", "Every comparison:", ""]
    for row in study["comparisons"]:
        role = roles[row["suite"]]
        lines.append(f"- **{row['variant']}** on `{row['suite']}` ({role}): {verdict(row, role)} — "
                     f"{_pct(row['base_acc'])} → {_pct(row['tuned_acc'])} ({_pts(row['diff'])}, "
                     f"95% CI [{_pts(row['ci95'][0])}, {_pts(row['ci95'][1])}])")
    lines += ["", "## Per suite", "",
              "| variant | suite | role | n | chance | base | tuned | diff (pts) | 95% CI (pts) | McNemar p | BH p | "
              "right→wrong | wrong→right | floor |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in study["comparisons"]:
        lines.append(
            f"| {r['variant']} | {r['suite']} | {roles[r['suite']]} | {r['n']} | {_pct(r['chance'])} | "
            f"{_pct(r['base_acc'])} | {_pct(r['tuned_acc'])} | {_pts(r['diff'])} | "
            f"[{_pts(r['ci95'][0])}, {_pts(r['ci95'][1])}] | {r['mcnemar_p']:.3g} | "
            f"{_num(r.get('p_bh'), 3) if r.get('p_bh') is not None else 'n/a'} | {r['right_to_wrong']} | "
            f"{r['wrong_to_right']} | {'**yes**' if r['floor'] else 'no'} |")
    n_boot = study["comparisons"][0]["n_bootstrap"] if study["comparisons"] else 0
    level = study["comparisons"][0].get("confidence", 0.95) if study["comparisons"] else 0.95
    lines += ["", f"CIs: {level:.0%} paired bootstrap over items ({n_boot} resamples, seeded). Verdicts 'gained'/"
              f"'lost' need the CI to exclude 0 and McNemar p < {ALPHA}. McNemar: exact binomial test on "
              "discordant pairs; BH p: Benjamini-Hochberg adjusted across every suite × strategy of that variant. Floor: base accuracy not significantly above chance + margin (one-sided exact "
              "binomial, α=0.05); chance = the better of uniform guessing and always giving the most common gold "
              "answer.", ""]
    lines += strategy_table(study)
    lines += sweep_table(study)
    lines += probe_table(study)
    lines += ["## Training", "", "| variant | method | trainable params | replay | steps | tokens | tokens/s | "
              "first loss | final loss | wall (s) |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in training_rows(study):
        lines.append(f"| {r['variant']} | {r['method']} | {r['trainable']:,} ({r['fraction']:.3%}) | {r['mix']} | "
                     f"{r['steps']} | {r['tokens']:,} | {r['tokens_per_s']:.0f} | {r['first_loss']} | "
                     f"{r['final_loss']} | {r['wall_s']:.0f}{' (train cache: an earlier run)' if r['cached'] else ''} |")
    lines += ["", "## Timings (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in study["timings_s"].items()]
    lines += ["", "## Data", "", f"Train items: {study['data']['train']}. Train/eval prompt overlap removed: "
              f"{study['data']['contamination']['removed_from_train']}; remaining overlap: "
              f"{study['data']['contamination']['train_eval_overlap_after_removal']}.", ""]
    return "\n".join(lines)


def variant_summary(study: dict) -> list[dict]:
    """Per variant: the suites (× strategies) it gained and lost on, and its gate result."""
    roles = {s["name"]: s["role"] for s in study["suites"]}
    gate = study.get("gate")
    out = []
    for v in study["variants"]:
        rows = [r for r in study["comparisons"] if r["variant"] == v["name"]]
        failed = [c for c in (gate or {}).get("checks", []) if c["variant"] == v["name"] and not c["passed"]]
        out.append({"variant": v["name"],
                    "gained": [r["suite"] for r in rows if verdict(r, roles[r["suite"]]) == "gained"],
                    "lost": [r["suite"] for r in rows if verdict(r, roles[r["suite"]]) == "lost"],
                    "gate": "no rules" if gate is None else f"FAILED ({len(failed)} checks)" if failed else "passed"})
    return out


def gate_lines(study: dict) -> list[str]:
    """The gate's result and every violated check (the study applies the config's gate rules, as `driftlab gate`)."""
    gate = study.get("gate")
    if gate is None:
        return []
    failed = [c for c in gate["checks"] if not c["passed"]]
    lines = ["", f"Gate ({len(gate['rules'])} rules, {len(gate['checks'])} checks): "
             f"**{'FAILED' if failed else 'passed'}**" + ("" if failed else ".")]
    for c in failed:
        ci = f", CI [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else ""
        diff = "" if c["diff"] is None else f" (diff {c['diff']:+.3f}{ci})"
        lines.append(f"- {c['variant']}: rule {c['rule']} on `{c['subject']}`{diff}: {c['why']}")
    return lines


def sweep_rows(study: dict) -> list[dict]:
    return (study.get("sweep") or {}).get("points", [])


def sweep_table(study: dict) -> list[str]:
    sweep = study.get("sweep")
    if not sweep:
        return []
    items = ", ".join(f"{n} {k}" for n, k in sweep["items"].items())
    lines = ["## Gain vs retention (scale sweep)", "",
             f"Each fine-tune evaluated zero-shot at scales α between the base (α=0) and itself (α=1) without "
             f"retraining (LoRA scale, SVF z, WiSE-FT for full weights), on {items} items. Held-out change: mean over "
             f"the held-out suites not at their floor. CIs: {sweep['confidence']:.0%} stratified paired bootstrap "
             f"({sweep['n_bootstrap']} resamples). Frontier: no other point gains at least as much and retains at "
             "least as much.", "",
             "| variant | α | target change (pts) | 95% CI | held-out change (pts) | 95% CI | frontier |",
             "|---|---:|---:|---|---:|---|---|"]
    for p in sweep["points"]:
        lines.append(f"| {p['variant']} | {p['alpha']:g} | {_pts(p['target_gain'])} | [{_pts(p['target_ci'][0])}, "
                     f"{_pts(p['target_ci'][1])}] | {_pts(p['heldout_change'])} | [{_pts(p['heldout_ci'][0])}, "
                     f"{_pts(p['heldout_ci'][1])}] | {'yes' if p['frontier'] else ''} |")
    return lines + [""]


def training_rows(study: dict) -> list[dict]:
    """One row per variant: what it trained (method, trainable parameters, replay) and how the run went."""
    rows = []
    for v in study["variants"]:
        t = v["train"]
        mix = (t.get("mix") or {}).get("sources") or {}
        rows.append({"variant": v["name"], "method": t["method"], "trainable": t["trainable_params"],
                     "fraction": t["trainable_fraction"], "steps": t["steps"], "tokens": t["tokens"],
                     "tokens_per_s": t["tokens_per_s"], "first_loss": _num(t["first_loss"]),
                     "final_loss": _num(t["final_loss"]), "wall_s": t["wall_s"],
                     "cached": bool((t.get("cache") or {}).get("hit")),  # copied from the train cache, not run now
                     "mix": ", ".join(f"{k} ({m['items']} items)" for k, m in mix.items()) or "none"})
    return rows


PROBE_NOTES = {
    "aoc": "early-answering area over the curve (lower = answer depends less on the chain)",
    "mistake_changed": "share of final answers changed by an injected arithmetic mistake (lower = chain ignored)",
    "paraphrase_changed": "share of answers changed by rewording the chain (higher = wording-sensitive)",
    "filler_correct": "accuracy with the chain replaced by filler", "nocot_correct": "accuracy with no chain",
    "cot_correct": "accuracy with the full chain, answer forced", "distinct_1": "unique unigrams / all (samples)",
    "distinct_2": "unique bigrams / all", "self_bleu": "samples' BLEU against each other (higher = collapse)",
    "embedding_spread": "mean pairwise cosine distance (lower = collapse)",
    "format_entropy": "bits over format classes (lower = collapse)", "mean_tokens": "sample length",
    "kl": "token KL(base ‖ tuned) on the base model's own general replies", "nll_tuned": "NLL on that text",
    "copied_from_prompt": "wrong answer copied from the question", "copied_from_exemplars":
    "wrong answer copied from a few-shot exemplar", "skipped_computation": "no step shown where one is needed",
    "template_flip": "right under one phrasing, wrong under another",
}


def probe_table(study: dict) -> list[str]:
    probes = study.get("probes")
    if not probes:
        return []
    lines = ["## Probes", "", f"On the first {probes['base']['items']} items of `{probes['base']['suite']}`, paired "
             "per item, base vs tuned; CIs are paired bootstrap over items.", "",
             "| variant | probe | metric | n | base | tuned | diff | 95% CI | what it measures |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in probes["comparisons"]:
        lines.append(f"| {r['variant']} | {r['probe']} | {r['metric']} | {r['n']} | {r['base']:.3f} | "
                     f"{r['tuned']:.3f} | {r['diff']:+.3f} | [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | "
                     f"{PROBE_NOTES.get(r['metric'], '')} |")
    runs = {"base": probes["base"], **probes["variants"]}
    lines += ["", "Early answering (share of forced answers equal to the full-CoT answer, by fraction of the chain "
              "kept), the format classes of the sampled replies, and each probe's cost:", "",
              "| model | chain present | " + " | ".join(f"f={f}" for f in _fractions(probes)) +
              " | sample formats | probe seconds |", "|---|---:|" + "---:|" * len(_fractions(probes)) + "---|---|"]
    for name, run in runs.items():
        f = run["probes"].get("faithfulness", {})
        curve = f.get("early_answer_curve", {})
        shares = run["probes"].get("diversity", {}).get("format_shares", {})
        formats = ", ".join(f"{k} {_pct(v)}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])) or "n/a"
        secs = ", ".join(f"{k} {v:.0f}" for k, v in run["timings_s"].items())
        lines.append(f"| {name} | {_pct(f.get('chain_rate', 0))} | " + " | ".join(
            _pct(curve[k]) if curve.get(k) is not None else "n/a" for k in _fractions(probes)) +
            f" | {formats} | {secs} |")
    return lines + [""]


def _fractions(probes: dict) -> list[str]:
    return list(probes["base"]["probes"].get("faithfulness", {}).get("early_answer_curve", {}))


def strategy_rows(study: dict) -> list[dict]:
    """One row per (suite, strategy, model) for suites evaluated under more than one strategy."""
    by_name = {s["name"]: s for s in study["suites"]}
    multi = {n.split("@")[0] for n in by_name if "@" in n}
    rows = []
    for name, suite in by_name.items():
        base_name = name.split("@")[0]
        if base_name not in multi:
            continue
        strategy = suite.get("strategy", "zero_shot")
        rows.append({"suite": base_name, "strategy": strategy, "model": "base", **_strategy_cells(suite["base_metrics"])})
        for v in study["variants"]:
            tuned = v.get("eval", {}).get(name)
            if tuned:
                rows.append({"suite": base_name, "strategy": strategy, "model": v["name"], **_strategy_cells(tuned)})
    return rows


def strategy_table(study: dict) -> list[str]:
    rows = strategy_rows(study)
    if not rows:
        return []
    lines = ["## Strategies × variants", "", "| suite | strategy | model | accuracy | format | latency p50 (s) | "
             "tokens/s | consistency |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['strategy']} | {r['model']} | {_pct(r['accuracy'])} | {_pct(r['format'])} | "
                     f"{_num(r['latency'])} | {_num(r['tokens_per_s'], 0)} | {_num(r['consistency'], 2)} |")
    return lines + [""]


def _strategy_cells(m: dict) -> dict:
    return {"accuracy": m["accuracy"], "format": m["format_rate"], "latency": m.get("latency_p50_s"),
            "tokens_per_s": m.get("tokens_per_s"), "consistency": m.get("consistency")}


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"
