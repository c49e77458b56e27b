"""report.md: the study's verdict and tables, for terminals and pull requests."""

from __future__ import annotations

from driftlab.compare.verdict import cannot_tell_text, start_summary, variant_summary, verdict
from driftlab.report.scorecard import scorecard_markdown
from driftlab.report.tables import (gate_lines, pct, probe_table, pts, strategy_table, sweep_table,
                                    training_rows, trajectory_lines)
from driftlab.schema import Study


def render_markdown(study: Study) -> str:
    roles = study.roles()
    lines = [f"# driftlab study: {study.name}", ""]
    lines += [f"Model: `{study.model.name}` (fingerprint `{study.model.fingerprint}`), "
              f"seed {study.seed}, run `{study.run_dir}`.", ""]
    lines += scorecard_markdown(study)
    lines += ["## Verdict", ""]
    for v in variant_summary(study):
        lines.append(f"- **{v['variant']}** — {verdict_line(v)}")
    lines += ["", verdict_note(study)]
    lines += gate_lines(study)
    lines += from_start_lines(study)
    lines += ["", "Every comparison:", ""]
    for row in study.comparisons:
        role = roles[row.suite]
        lines.append(f"- **{row.variant}** on `{row.suite}` ({role}): {verdict(row, role)} — "
                     f"{pct(row.base_acc)} → {pct(row.tuned_acc)} ({pts(row.diff)}, "
                     f"95% CI [{pts(row.ci95[0])}, {pts(row.ci95[1])}], corrected p {_p(row.p_adj)}, "
                     f"{_mde(row)})")
    lines += ["", "## Per suite", "",
              "| variant | suite | role | n | chance | base | tuned | diff (pts) | 95% CI (pts) | McNemar p | adj. p | "
              "right→wrong | wrong→right | MDE (pts) | items to certify | floor | verdict |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in study.comparisons:
        lines.append(
            f"| {r.variant} | {r.suite} | {roles[r.suite]} | {r.n} | {pct(r.chance)} | "
            f"{pct(r.base_acc)} | {pct(r.tuned_acc)} | {pts(r.diff)} | "
            f"[{pts(r.ci95[0])}, {pts(r.ci95[1])}] | {r.mcnemar_p:.3g} | {_p(r.p_adj)} | {r.right_to_wrong} | "
            f"{r.wrong_to_right} | {'none' if r.mde is None else f'{100 * r.mde:.1f}'} | "
            f"{r.n_to_certify if r.n_to_certify is not None else 'n/a'} | {'**yes**' if r.floor else 'no'} | "
            f"{verdict(r, roles[r.suite])} |")
    first = study.comparisons[0] if study.comparisons else None
    n_boot, level = (first.n_bootstrap, first.confidence) if first else (0, 0.95)
    lines += ["", f"CIs: {level:.0%} paired bootstrap over items ({n_boot} resamples, seeded). McNemar: exact "
              "binomial test on discordant pairs; adj. p: that p corrected across every suite × strategy of the "
              f"variant ({first.correction if first else 'bh'}). MDE: the smallest difference one McNemar test "
              f"(α {first.alpha if first else 0.05}, uncorrected: the corrected verdicts need more) detects with "
              f"{first.power if first else 0.8:.0%} power at the row's flip rate; items to certify: how many items "
              "the CI (and the exact bound on the loss) would need to clear −margin at the observed difference "
              "(n/a: the observed loss already exceeds it). Floor: base accuracy not "
              "significantly above chance + margin (one-sided exact binomial, α=0.05); chance = the better of "
              "uniform guessing and always giving the most common gold answer.", ""]
    lines += strategy_table(study)
    lines += sweep_table(study)
    lines += probe_table(study)
    lines += ["## Training", "", "| variant | method | trainable params | trained to write | replay | steps | tokens | "
              "tokens/s | first loss | final loss | wall (s) |", "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in training_rows(study):
        lines.append(f"| {r['variant']} | {r['method']} | {r['trainable']:,} ({r['fraction']:.3%}) | {r['targets']} | "
                     f"{r['mix']} | {r['steps']} | {r['tokens']:,} | {r['tokens_per_s']:.0f} | {r['first_loss']} | "
                     f"{r['final_loss']} | {r['wall_s']:.0f}{' (train cache: an earlier run)' if r['cached'] else ''} |")
    over = trajectory_lines(study)
    if over:
        lines += ["", "## Over training", ""] + over
    lines += ["", "## Timings (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in study.timings_s.items()]
    contamination = study.data["contamination"]
    lines += ["", "## Data", "", f"Train items: {study.data['train']}. Train/eval prompt overlap removed: "
              f"{contamination['removed_from_train']}; remaining overlap: "
              f"{contamination['train_eval_overlap_after_removal']}.", ""]
    return "\n".join(lines)


def from_start_lines(study: Study) -> list[str]:
    """A variant that continued another (RL after SFT) against where it started, paired the same way."""
    if not study.from_start:
        return []
    roles = study.roles()
    lines = ["", "Against where it started (a variant that continued another, train.init_from; no gate):", ""]
    lines += [f"- **{v['variant']}** against `{v['against']}` — {verdict_line(v, gate=False)}"
              for v in start_summary(study)]
    lines.append("")
    for row in study.from_start:
        lines.append(f"  - **{row.variant}** on `{row.suite}`: {start_verdict(row, roles[row.suite])} — `{row.against}` "
                     f"{pct(row.base_acc)} → {pct(row.tuned_acc)} ({pts(row.diff)}, 95% CI [{pts(row.ci95[0])}, "
                     f"{pts(row.ci95[1])}], corrected p {_p(row.p_adj)}, {_mde(row)})")
    return lines


def start_verdict(row, role: str) -> str:
    """A row against where the variant started: its floor is the start's ("at floor" means the start is at chance)."""
    return verdict(row, role).replace("base ≈ chance", f"{row.against} ≈ chance")


def verdict_line(v: dict, gate: bool = True) -> str:
    """One variant's headline: gains, then the three-way cost verdict, then the gate."""
    margin = f"{100 * v['margin']:.0f} pts" if v["margin"] is not None else "the margin"
    cannot = "; ".join(cannot_tell_text(r) for r in v["cannot_tell"])
    return (f"gained: {', '.join(v['gained']) or 'none'}; lost: {', '.join(v['lost']) or 'none shown'}; "
            f"no loss beyond {margin}: {', '.join(v['within']) or 'none certified'}; "
            f"cannot tell: {cannot or 'none'}" + (f"; gate: {v['gate']}" if gate else ""))


def verdict_note(study: Study) -> str:
    first = study.comparisons[0] if study.comparisons else None
    correction = first.correction if first and first.correction else "bh"
    alpha = first.alpha if first else 0.05
    return (f"(gained / lost: the CI excludes 0 and the McNemar p, corrected across the variant's rows ({correction}), "
            f"is below {alpha}. Held-out rows are costs, with three answers: lost; no loss beyond the margin (the "
            "CI's lower bound is above −margin); cannot tell (neither: the items cannot tell such a loss from "
            "none — each such row gives the smallest difference it could detect and the items that would certify "
            "the margin). A suite at its floor has no loss to show.)")


def _mde(row) -> str:
    return "no difference detectable" if row.mde is None else f"detectable ≥ {100 * row.mde:.1f} pts"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"
