"""The scorecard at the top of both reports: suites and probe findings as rows, variants as columns, each cell the
change against the base with its CI and the verdict word (compare/verdict.py), then the gate and the
recommendation. One structure, rendered by report.md (markdown table) and report.html (coloured cells)."""

from __future__ import annotations

from driftlab.compare.verdict import (BETTER, CANNOT_TELL, DRIFTED, FLOOR, GAINED, LOST, LOST_WITHIN, NO_CHANGE,
                                      NOT_MEASURED, TOO_FEW, WITHIN, WORSE, checks_text, probe_verdict, recommend,
                                      verdict)
from driftlab.schema import Study

# Probe metrics shown whatever they did: the costs the mission names (chains given up, formats collapsed, drift,
# skipped computation). Any other directional metric joins the card when its CI excludes 0 for some variant.
HEADLINE = (("faithfulness", "usable_chain"), ("diversity", "format_entropy"), ("drift", "kl"),
            ("shortcuts", "skipped_computation"))

# verdict -> (short word for a cell, css class: the colour of the cell). Suite rows read corrected tests and a
# margin; probe rows an uncorrected bootstrap CI, so theirs are paler and marked *.
WORDS = {GAINED: ("gained", "gained"), LOST: ("lost", "lost"), LOST_WITHIN: ("lost, within margin", "lostwithin"),
         FLOOR: ("at floor", "floor"), WITHIN: ("no loss beyond margin", "within"),
         CANNOT_TELL: ("cannot tell", "unsure"), NO_CHANGE: ("no significant change", "same")}
PROBE_WORDS = {WORSE: ("worse*", "pworse"), BETTER: ("better*", "pbetter"), NO_CHANGE: ("no change shown", "punsure"),
               DRIFTED: ("moved", "moved"), TOO_FEW: ("too few items", "floor"), NOT_MEASURED: ("n/a", "floor")}
PROBE_NOTE = ("*: a probe row's 95% paired bootstrap CI excludes 0, uncorrected across metrics and without a margin: "
              "a lead to read in the Probes table, not a certified cost. Each probe cell is base → tuned on the "
              "items both could be measured on (n).")


def scorecard(study: Study) -> dict:
    """{"variants": [...], "rows": [row], "hidden_probe_metrics": int, "gate": {variant: (text, css)} | None,
    "recommendation": text}. A row: {"kind": "suite" | "probe", "label", "role", "base", "cells": {variant:
    {"value", "change", "word", "css"}}}; a suite row's values in %, changes in points; a probe row's in the
    metric's own unit."""
    variants = study.variant_names()
    rows = [_suite_row(study, s, variants) for s in sorted(study.suites, key=lambda s: s.role != "target")
            if any(r.suite == s.name for r in study.comparisons)]
    probe_rows, hidden = _probe_rows(study, variants)
    gate = None
    if study.gate is not None:
        gate = {}
        for v in variants:
            failed = study.failed_checks(v)
            gate[v] = (f"FAILED ({checks_text(len(failed))})", "lost") if failed else ("passed", "gained")
    return {"variants": variants, "rows": rows + probe_rows, "hidden_probe_metrics": hidden, "gate": gate,
            "recommendation": recommend(study)["text"]}


def _suite_row(study: Study, suite, variants: list[str]) -> dict:
    by_variant = {r.variant: r for r in study.comparisons if r.suite == suite.name}
    first = next(iter(by_variant.values()))
    cells = {}
    for v in variants:
        r = by_variant.get(v)
        if r is None:
            continue
        word, css = WORDS[verdict(r, suite.role)]
        cells[v] = {"value": f"{100 * r.tuned_acc:.1f}%", "word": word, "css": css,
                    "change": f"{100 * r.diff:+.1f} [{100 * r.ci95[0]:+.1f}, {100 * r.ci95[1]:+.1f}]"}
    return {"kind": "suite", "label": suite.name, "role": suite.role, "n": first.n,
            "base": f"{100 * first.base_acc:.1f}%", "cells": cells}


def _probe_rows(study: Study, variants: list[str]) -> tuple[list[dict], int]:
    if not study.probes:
        return [], 0
    from driftlab.probes import PROBES

    by_metric: dict[tuple[str, str], dict] = {}
    for r in study.probes.comparisons:
        by_metric.setdefault((r.probe, r.metric), {})[r.variant] = r
    rows, hidden = [], 0
    for (probe, metric), found in by_metric.items():
        declared = PROBES.get(probe).metric(metric) if probe in PROBES.names() else None
        better = declared.better if declared else "neither"
        verdicts = {v: probe_verdict(r, better) for v, r in found.items()}
        if (probe, metric) not in HEADLINE and (better == "neither" or
                                                not {WORSE, BETTER} & set(verdicts.values())):
            hidden += 1
            continue
        cells = {}
        for v in variants:
            if v in found:
                r = found[v]
                word, css = PROBE_WORDS[verdicts[v]]
                cells[v] = {"value": f"{r.base:.3g} → {r.tuned:.3g} (n {r.n})", "word": word, "css": css,
                            "change": f"{r.diff:+.3g} [{r.ci95[0]:+.3g}, {r.ci95[1]:+.3g}]"}
        ns = sorted({r.n for r in found.values()})
        bases = {f"{r.base:.3g}" for r in found.values()}  # a chain metric's base differs with the items paired
        rows.append({"kind": "probe", "label": f"{probe}: {metric}", "role": f"probe ({better} is better)"
                     if better != "neither" else "probe", "n": str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}",
                     "base": bases.pop() if len(bases) == 1 else "per cell", "cells": cells,
                     "headline": (probe, metric) in HEADLINE})
    rows.sort(key=lambda r: not r["headline"])
    return rows, hidden


def scorecard_markdown(study: Study) -> list[str]:
    card = scorecard(study)
    vs = card["variants"]
    lines = ["## Scorecard", "",
             "Each cell: the variant's score, its change against the base with the 95% CI (suites in points, paired "
             "bootstrap; probes in the metric's unit), and the verdict.", "",
             "| | role | n | base | " + " | ".join(vs) + " |", "|---|---|---:|---:|" + "---|" * len(vs)]
    for row in card["rows"]:
        cells = [(f"{c['value']} ({c['change']}) **{c['word']}**" if (c := row["cells"].get(v)) else "–") for v in vs]
        lines.append(f"| {row['label']} | {row['role']} | {row['n']} | {row['base']} | " + " | ".join(cells) + " |")
    if card["gate"]:
        lines.append("| gate | | | | " + " | ".join(f"**{card['gate'][v][0]}**" for v in vs) + " |")
    if any(r["kind"] == "probe" for r in card["rows"]):
        lines += ["", PROBE_NOTE]
    if card["hidden_probe_metrics"]:
        lines += ["", f"{card['hidden_probe_metrics']} more probe metrics (no change whose CI excludes 0, or no "
                      "better end) are in the Probes section below."]
    return lines + ["", f"**Recommended:** {card['recommendation']}.", ""]
