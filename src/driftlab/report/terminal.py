"""The study's answer in the terminal: suites × variants (paired change vs the base, its CI, the verdict), the gate,
the recommended variant and where the report is — what an lm-eval user expects at the end of a run."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftlab.compare.verdict import (CANNOT_TELL, FLOOR, GAINED, LOST, LOST_WITHIN, NO_CHANGE, WITHIN, recommend,
                                      variant_summary, verdict)
from driftlab.runs import dir_size
from driftlab.schema import Study

SHORT = {GAINED: ("gained", "green"), LOST: ("LOST", "bold red"), LOST_WITHIN: ("lost<margin", "red"),
         FLOOR: ("floor", "dim"), WITHIN: ("ok", ""), CANNOT_TELL: ("can't tell", "yellow"),
         NO_CHANGE: ("no change", "")}


def summary_table(study: Study) -> Table:
    """One row per result key (target first), one column per variant: `+36.0 [+27, +45] gained`, in points."""
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
            if r is None:
                row.append("")
                continue
            word, style = SHORT[verdict(r, roles[s.name])]
            text = f"{100 * r.diff:+.1f} [{100 * r.ci95[0]:+.0f},{100 * r.ci95[1]:+.0f}] {word}"
            row.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(*row)
    return table


def print_summary(study: Study, run_dir: Path, console: Console) -> None:
    console.print()
    console.print(summary_table(study))
    for v in variant_summary(study):
        style = "red" if v["gate"].startswith("FAILED") else "green"
        console.print(f"gate  {v['variant']}: [{style}]{v['gate']}[/]")
    console.print(f"[bold]recommended:[/] {recommend(study)['text']}")
    console.print(f"report: {run_dir / 'report.html'}\n        {run_dir / 'report.md'}\nstudy:  {run_dir / 'study.json'}"
                  f"\nrun directory: {dir_size(run_dir) / 1e6:.1f} MB")
