"""The answer in the terminal, at the end of a command — what an lm-eval user expects at the end of a run. The
study's: suites × variants (paired change vs the base, its CI, the verdict), the gate, the recommended variant and
where the report is; eval's: accuracy per suite against chance; compare's: the change per suite with its verdict;
gate's: the gate line and each violated check; sweep's table. Changes in accuracy are in points everywhere."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftlab.compare.verdict import (CANNOT_TELL, FLOOR, GAINED, LOST, LOST_WITHIN, NO_CHANGE, WITHIN, recommend,
                                      variant_summary, verdict)
from driftlab.runs import dir_size
from driftlab.schema import Comparison, GateCheck, Study, SweepPoint

SHORT = {GAINED: ("gained", "green"), LOST: ("LOST", "bold red"), LOST_WITHIN: ("lost<margin", "red"),
         FLOOR: ("floor", "dim"), WITHIN: ("ok", ""), CANNOT_TELL: ("can't tell", "yellow"),
         NO_CHANGE: ("not significant", "")}  # a target row whose CI straddles 0: not a certified null


def summary_table(study: Study) -> Table:
    """One row per result key (target first), one column per variant: `+36.0 [+27,+45] gained`, in points."""
    roles = study.roles()
    table = Table(title=f"{study.name}: change vs base, points [95% CI]", title_justify="left")
    table.add_column("suite", overflow="fold")
    table.add_column("base", justify="right", no_wrap=True, min_width=5)
    for name in study.variant_names():
        table.add_column(name, overflow="fold", min_width=10)
    cells = {(r.variant, r.suite): r for r in study.comparisons}
    for s in sorted(study.suites, key=lambda s: (s.role != "target", not s.key.zero_shot)):
        row = [f"{s.name}{' (target)' if s.role == 'target' else ''}",
               f"{100 * s.base_metrics['accuracy']:.1f}%"]
        for name in study.variant_names():
            r = cells.get((name, s.name))
            row.append("" if r is None else verdict_cell(r, roles[s.name]))
        table.add_row(*row)
    return table


def verdict_cell(row: Comparison, role: str) -> str:
    """`+36.0 [+27,+45] gained`: the paired change in points, its CI and the verdict's short word, styled."""
    return _styled(f"{100 * row.diff:+.1f} [{100 * row.ci95[0]:+.0f},{100 * row.ci95[1]:+.0f}]", row, role)


def _styled(text: str, row: Comparison, role: str) -> str:
    word, style = SHORT[verdict(row, role)]
    return f"[{style}]{text} {word}[/]" if style else f"{text} {word}"


def print_summary(study: Study, run_dir: Path, console: Console) -> None:
    console.print()
    console.print(summary_table(study))
    for v in variant_summary(study):
        style = "red" if v["gate"].startswith("FAILED") else "green"
        console.print(f"gate  {v['variant']}: [{style}]{v['gate']}[/]")
    console.print(f"[bold]recommended:[/] {recommend(study)['text']}")
    console.print(f"report: {run_dir / 'report.html'}\n        {run_dir / 'report.md'}\n"
                  f"study:  {run_dir / 'study.json'}\nrun directory: {dir_size(run_dir) / 1e6:.1f} MB")


def points(diff: float, ci: list[float] | None) -> str:
    """`+14.0 [+9.0, +20.0]`: a change in accuracy and its CI, in points (no CI: the change alone)."""
    return f"{100 * diff:+.1f}" + ("" if ci is None else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]")


# --- eval -------------------------------------------------------------------------------------------------------

def eval_table(summary: dict, floor_margin: float = 0.02) -> Table:
    """One row per result key of an eval.json: n, accuracy, chance, format compliance; 'at floor' when the accuracy
    is not significantly above chance + margin (the study's floor test, compare.stats.at_floor)."""
    from driftlab.compare.stats import at_floor

    model = summary["model"] + (f" + {summary['artifact']}" if summary.get("artifact") else "")
    table = Table(title=f"{model}: accuracy per suite", title_justify="left")
    table.add_column("suite", no_wrap=True)
    for name in ("n", "accuracy", "chance", "format"):
        table.add_column(name, justify="right", no_wrap=True)
    for key, m in summary["suites"].items():
        correct = m.get("correct", round(m["accuracy"] * m["n"]))
        floor = " [dim](at floor)[/]" if at_floor(correct, m["n"], m["chance"], floor_margin) else ""
        table.add_row(key, str(m["n"]), f"{m['accuracy']:.1%}{floor}", f"{m['chance']:.1%}", f"{m['format_rate']:.0%}")
    return table


def print_eval_summary(summary: dict, out_dir: Path, console: Console, floor_margin: float = 0.02) -> None:
    console.print()
    console.print(eval_table(summary, floor_margin))
    console.print(f"eval run: {out_dir}  (eval.json, <suite>.jsonl per item)")


# --- compare ----------------------------------------------------------------------------------------------------

def compare_table(rows: list[Comparison], roles: dict[str, str], title: str) -> Table:
    """compare's answer, one row per result key: A → B accuracy, the change in points with its CI, the verdict's
    short word (a key without a known role is read as a held-out cost, as compare/verdict.py does)."""
    table = Table(title=f"{title}: change in points [{rows[0].confidence:.0%} CI]" if rows else title,
                  title_justify="left")
    table.add_column("suite", no_wrap=True)  # never cut: the other columns wrap first
    table.add_column("A → B", justify="right")
    table.add_column("change, verdict", overflow="fold")
    for r in rows:
        table.add_row(r.suite, f"{r.base_acc:.1%} → {r.tuned_acc:.1%}",
                      _styled(points(r.diff, r.ci95), r, roles.get(r.suite, "heldout")))
    return table


# --- gate -------------------------------------------------------------------------------------------------------

def gate_table(checks: list[GateCheck], probe_rules: set[int]) -> Table:
    """Every check: suites' changes in points; a probe metric's (rules in `probe_rules`) in its own units."""
    table = Table(title="gate checks: suites in points, probe metrics in their own units", title_justify="left")
    table.add_column("variant", overflow="fold")
    table.add_column("rule", justify="right")
    table.add_column("subject", no_wrap=True)
    table.add_column("change [95% CI]", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for c in checks:
        table.add_row(c.variant, str(c.rule), c.subject, _check_change(c, c.rule in probe_rules),
                      ("skipped (at floor)" if c.why.startswith("skipped") else "pass") if c.passed
                      else "[bold red]FAIL[/]")
    return table


def print_gate_summary(checks: list[GateCheck], probe_rules: set[int], console: Console) -> None:
    """The gate line, then each violated check with why (gate.py's words) on its own line."""
    failed = [c for c in checks if not c.passed]
    style = "bold red" if failed else "green"
    console.print(f"[{style}]gate: {'FAILED' if failed else 'passed'}[/] ({len(failed)} of {len(checks)} checks "
                  "violated)")
    for c in failed:
        console.print(f"  {escape(c.variant)}, rule {c.rule}, {escape(c.subject)} "
                      f"({_check_change(c, c.rule in probe_rules)}): {escape(c.why)}", soft_wrap=True)


def _check_change(check: GateCheck, probe: bool) -> str:
    if check.diff is None:
        return "n/a"
    if probe:
        ci = f" [{check.ci95[0]:+.3f}, {check.ci95[1]:+.3f}]" if check.ci95 else ""
        return f"{check.diff:+.3f}{ci}"
    return f"{points(check.diff, check.ci95)} pts"


# --- sweep ------------------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("variant", "α", "target change (95% CI)", "held-out change (95% CI)", "frontier")


def sweep_rows(sweep_points: list[SweepPoint]) -> list[list[str]]:
    """The sweep's table, one row per (variant, α), changes in points: the terminal's and pareto.html's."""
    return [[p.variant, f"{p.alpha:g}", points(p.target_gain, p.target_ci), points(p.heldout_change, p.heldout_ci),
             "yes" if p.frontier else ""] for p in sweep_points]


def sweep_table(sweep_points: list[SweepPoint]) -> Table:
    table = Table(*SWEEP_COLUMNS, title="gain vs retention, points", title_justify="left")
    for row in sweep_rows(sweep_points):
        table.add_row(*row)
    return table
