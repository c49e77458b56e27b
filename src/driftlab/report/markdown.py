"""report.md: the study's verdict and tables, for terminals and pull requests."""

from __future__ import annotations

from driftlab.compare.verdict import ALPHA, variant_summary, verdict
from driftlab.report.tables import (gate_lines, num, pct, probe_table, pts, strategy_table, sweep_table,
                                    training_rows)
from driftlab.schema import Study


def render_markdown(study: Study) -> str:
    roles = study.roles()
    lines = [f"# driftlab study: {study.name}", ""]
    lines += [f"Model: `{study.model.name}` (fingerprint `{study.model.fingerprint}`), "
              f"seed {study.seed}, run `{study.run_dir}`.", ""]
    lines += ["## Verdict", ""]
    for v in variant_summary(study):
        lines.append(f"- **{v['variant']}** — gained: {', '.join(v['gained']) or 'none'}; lost: "
                     f"{', '.join(v['lost']) or 'none'}; gate: {v['gate']}")
    lines += ["", "(gained/lost: per suite × strategy, CI excluding 0 and McNemar p < 0.05, not corrected for "
              "multiple comparisons — the Benjamini-Hochberg p of each row is in the table below.)"]
    lines += gate_lines(study)
    lines += ["", "Every comparison:", ""]
    for row in study.comparisons:
        role = roles[row.suite]
        lines.append(f"- **{row.variant}** on `{row.suite}` ({role}): {verdict(row, role)} — "
                     f"{pct(row.base_acc)} → {pct(row.tuned_acc)} ({pts(row.diff)}, "
                     f"95% CI [{pts(row.ci95[0])}, {pts(row.ci95[1])}])")
    lines += ["", "## Per suite", "",
              "| variant | suite | role | n | chance | base | tuned | diff (pts) | 95% CI (pts) | McNemar p | BH p | "
              "right→wrong | wrong→right | floor |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in study.comparisons:
        lines.append(
            f"| {r.variant} | {r.suite} | {roles[r.suite]} | {r.n} | {pct(r.chance)} | "
            f"{pct(r.base_acc)} | {pct(r.tuned_acc)} | {pts(r.diff)} | "
            f"[{pts(r.ci95[0])}, {pts(r.ci95[1])}] | {r.mcnemar_p:.3g} | {num(r.p_bh, 3)} | {r.right_to_wrong} | "
            f"{r.wrong_to_right} | {'**yes**' if r.floor else 'no'} |")
    n_boot = study.comparisons[0].n_bootstrap if study.comparisons else 0
    level = study.comparisons[0].confidence if study.comparisons else 0.95
    lines += ["", f"CIs: {level:.0%} paired bootstrap over items ({n_boot} resamples, seeded). Verdicts 'gained'/"
              f"'lost' need the CI to exclude 0 and McNemar p < {ALPHA}. McNemar: exact binomial test on "
              "discordant pairs; BH p: Benjamini-Hochberg adjusted across every suite × strategy of that variant. "
              "Floor: base accuracy not significantly above chance + margin (one-sided exact "
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
    lines += [f"| {k} | {v:.1f} |" for k, v in study.timings_s.items()]
    contamination = study.data["contamination"]
    lines += ["", "## Data", "", f"Train items: {study.data['train']}. Train/eval prompt overlap removed: "
              f"{contamination['removed_from_train']}; remaining overlap: "
              f"{contamination['train_eval_overlap_after_removal']}.", ""]
    return "\n".join(lines)
