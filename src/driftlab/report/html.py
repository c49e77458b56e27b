"""report.html: one self-contained file (plotly.js inlined, no CDN) with the verdict, tables and plots."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from driftlab.compare.verdict import cannot_tell_text, start_summary, variant_summary, verdict
from driftlab.report.colours import variant_colour
from driftlab.report.markdown import start_verdict, verdict_line, verdict_note
from driftlab.report.scorecard import PROBE_NOTE, PROBE_WORDS, WORDS, scorecard
from driftlab.report.plots import (accuracy_figure, diff_figure, early_answer_figure, error_figure, loss_figure,
                                   pareto_figure, reward_figure, steps_figure, strategy_heatmap, trajectory_figure)
from driftlab.report.tables import (gate_lines, probe_table, strategy_rows, sweep_table, training_rows,
                                    trajectory_lines)
from driftlab.schema import Study


def render_html(study: Study, train_logs: dict[str, list[dict]], flips: list[dict] | None = None) -> str:
    figures = [accuracy_figure(study), diff_figure(study)]
    figures += [steps_figure(study, f) for f in dict.fromkeys(s.family for s in study.suites if s.family)]
    if strategy_rows(study):
        figures.append(strategy_heatmap(study))
    if any(s.base_metrics.get("errors") for s in study.suites):
        figures.append(error_figure(study))
    if any(train_logs.values()):
        figures.append(loss_figure(train_logs, study.variant_names()))
    if any(r.get("reward") is not None for rows in train_logs.values() for r in rows):
        figures.append(reward_figure(train_logs, study.variant_names()))
    figures += [trajectory_figure(v.name, v.trajectory) for v in study.variants if v.trajectory]
    if study.probes and study.probes.base.get("probes", {}).get("faithfulness"):
        figures.append(early_answer_figure(study.probes))
    plots = "\n".join(_plot(fig) for fig in figures)
    sweep = ""
    if study.sweep:
        sweep = _md_table_as_html(sweep_table(study)) + _plot(pareto_figure(study.sweep.points, study.variant_names()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driftlab: {html.escape(study.name)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}
th,td{{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}} th{{background:#f4f4f4}}
td.l,th.l{{text-align:left}} .gained{{color:#1a7f37;font-weight:600}} .lost{{color:#c0392b;font-weight:600}}
.floor{{color:#888}} .unsure{{color:#9a6700;font-weight:600}} .plot{{margin:1.5rem 0}}
code{{background:#f4f4f4;padding:0 .2rem}} .wide{{overflow-x:auto}}
table.flips pre{{white-space:pre-wrap;margin:0;max-width:28rem;font-size:.8rem}} .lost-row td{{background:#fdf0ef}}
.gained-row td{{background:#eff8f0}}
td.card{{font-size:.85rem;min-width:9rem}} .card.gained{{background:#dcf3e0}} .card.lost{{background:#f9d9d5}}
.card.unsure{{background:#fcefc7}} .card.within{{background:#e8f0fb}} .card.floor{{background:#eee;color:#666}}
.card.same{{background:#fff}} .card.moved{{background:#f0e8f7}} .card.lostwithin{{background:#fbece9}}
.card.pworse{{background:#fdf0ee;border-left:3px solid #e8a49c}} .card.pbetter{{background:#f1faf2;
border-left:3px solid #9fd3a8}} .card.punsure{{background:#fffaf0}}
.card .word{{font-size:.75rem;text-transform:uppercase}}
.legend span{{padding:.1rem .4rem;margin-right:.2rem;font-size:.75rem;border:1px solid #ddd}}
.swatch{{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}}
th.sortable{{cursor:pointer}} th.sortable:after{{content:" ⇅";color:#aaa}}
</style>
<script>{get_plotlyjs()}</script><script>{SCRIPT}</script></head><body>
<h1>driftlab study: {html.escape(study.name)}</h1>
<p>Model <code>{html.escape(study.model.name)}</code> (fingerprint <code>{study.model.fingerprint}</code>),
seed {study.seed}, total {study.timings_s.get('total', 0):.0f}s.</p>
<h2>Scorecard</h2>{_scorecard(study)}
<h2>Verdict</h2>{_verdict_list(study)}
<h2>Per suite</h2>{_table(study)}
<p class="floor">CIs: paired bootstrap over items, seeded. McNemar: exact test on discordant pairs; adj. p: corrected
across the variant's rows. MDE: the smallest difference one uncorrected McNemar test detects with the configured
power (compare.power) at the row's flip rate; items to certify: what the CI and the exact bound on the loss need to
clear −margin at the observed difference. A suite at its floor (base not significantly above chance + margin) has no
loss to show unless it falls significantly; a gain from it is still a gain.</p>
{_strategy_table(study)}
{sweep}
{_training_table(study)}
{_md_table_as_html(probe_table(study))}
{_md_table_as_html(["## Over training", ""] + over if (over := trajectory_lines(study)) else [])}
<h2>Plots</h2>{plots}
{_flip_browser(flips or [])}
</body></html>
"""


def _scorecard(study: Study) -> str:
    """Suites and probe findings × variants, each cell coloured by its verdict (report/scorecard.py)."""
    card = scorecard(study)
    vs = card["variants"]
    head = ("<tr><th class=l></th><th class=l>role</th><th>n</th><th>base</th>" +
            "".join(f"<th class=l>{_swatch(study, v)}{html.escape(v)}</th>" for v in vs) + "</tr>")
    body = []
    for row in card["rows"]:
        cells = "".join(
            f"<td class='l card {c['css']}'><b>{html.escape(c['value'])}</b> {html.escape(c['change'])}<br>"
            f"<span class=word>{html.escape(c['word'])}</span></td>" if (c := row["cells"].get(v)) else "<td>–</td>"
            for v in vs)
        body.append(f"<tr class='{row['kind']}'><td class=l><code>{html.escape(row['label'])}</code></td>"
                    f"<td class=l>{html.escape(row['role'])}</td><td>{row['n']}</td><td>{row['base']}</td>{cells}</tr>")
    if card["gate"]:
        body.append("<tr><td class=l><b>gate</b></td><td></td><td></td><td></td>" + "".join(
            f"<td class='l card {card['gate'][v][1]}'><b>{html.escape(card['gate'][v][0])}</b></td>" for v in vs) +
            "</tr>")
    hidden = (f"<p class=floor>{card['hidden_probe_metrics']} more probe metrics (no change whose CI excludes 0, or "
              "no better end) are in the Probes section below.</p>" if card["hidden_probe_metrics"] else "")
    legend = "".join(f"<span class='card {css}'>{html.escape(word)}</span> " for word, css in
                     dict(list(WORDS.values()) + list(PROBE_WORDS.values())).items())
    probe_note = f"<p class=floor>{html.escape(PROBE_NOTE)}</p>" if any(r["kind"] == "probe" for r in card["rows"]) \
        else ""
    return (f"<div class=wide><table class='scorecard nosort'>{head}{''.join(body)}</table></div>"
            f"<p class=legend>{legend}</p>"
            f"<p><b>Recommended:</b> {html.escape(card['recommendation'].replace('`', ''))}.</p>"
            "<p class=floor>Each cell: the variant's score, its change against the base with the 95% CI (suites in "
            f"points, paired bootstrap; probes in the metric's unit) and the verdict.</p>{probe_note}{hidden}")


def _swatch(study: Study, variant: str) -> str:
    return f"<span class=swatch style='background:{variant_colour(study.variant_names(), variant)}'></span>"


def _md_table_as_html(lines: list[str]) -> str:
    """The markdown probe section (heading, notes, pipe tables) as HTML, so both reports say the same."""
    out = []
    for line in lines:
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("### "):
            out.append(f"<h3>{html.escape(line[4:])}</h3>")
        elif line.startswith("|") and set(line.replace("|", "").strip()) <= set("-: "):
            if out and out[-1].startswith("<tr>"):  # the row above the separator is the header
                out[-1] = out[-1].replace("<td class=l>", "<th class=l>").replace("</td>", "</th>")
            continue
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.append("<tr>" + "".join(f"<td class=l>{html.escape(c)}</td>" for c in cells) + "</tr>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    body, rows = [], []
    for chunk in out:  # group consecutive rows into tables
        if chunk.startswith("<tr>"):
            rows.append(chunk)
            continue
        if rows:
            body.append("<table>" + "".join(rows) + "</table>")
            rows = []
        body.append(chunk)
    if rows:
        body.append("<table>" + "".join(rows) + "</table>")
    return "".join(body)


# A few lines of plain JS rather than a table library: the report is one offline file (no CDN), and sorting by a
# column and filtering the flip browser are all it needs. A cell sorts by its first number, else by its text.
SCRIPT = r"""
document.addEventListener('DOMContentLoaded', function () {
  function key(td) {
    var t = td.innerText.trim(), m = t.replace(/\u2212/g, '-').match(/^[\[(]?\s*([-+]?\d+(\.\d+)?(e[-+]?\d+)?)/i);
    return m ? parseFloat(m[1]) : t.toLowerCase();  // a number only where the cell starts with one
  }
  document.querySelectorAll('table').forEach(function (table) {
    var head = table.rows[0];
    if (!head || !head.querySelector('th') || table.classList.contains('nosort')) return;
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.classList.add('sortable');
      th.title = 'sort by this column';
      th.addEventListener('click', function () {
        var rows = Array.prototype.slice.call(table.rows, 1), up = th.dataset.dir !== 'up';
        rows.sort(function (a, b) {
          var x = key(a.cells[col] || a), y = key(b.cells[col] || b);
          if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
          return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
        });
        th.dataset.dir = up ? 'up' : 'down';
        rows.forEach(function (r) { r.parentNode.appendChild(r); });
      });
    });
  });
  var filters = document.querySelectorAll('#flips select');
  function apply() {
    var shown = 0;
    document.querySelectorAll('#flips tr.flip').forEach(function (tr) {
      var ok = Array.prototype.every.call(filters, function (f) { return !f.value || tr.dataset[f.name] === f.value; });
      tr.style.display = ok ? '' : 'none';
      shown += ok ? 1 : 0;
    });
    document.getElementById('flips-shown').textContent = shown;
  }
  filters.forEach(function (f) { f.addEventListener('change', apply); });
});
"""


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f"<option value='{html.escape(v, quote=True)}'>{html.escape(v)}</option>" for v in values)
    return f"<label>{label} <select name={name}><option value=''>all</option>{options}</select></label> "


def _flip_browser(flips: list[dict]) -> str:
    if not flips:
        return ""
    filters = (_select("variant", "variant", list(dict.fromkeys(f["variant"] for f in flips))) +
               _select("suite", "suite", sorted({f["suite"] for f in flips})) +
               _select("direction", "flip", ["right→wrong", "wrong→right"]))
    rows = "".join(
        f"<tr class='flip {'lost' if f['direction'] == 'right→wrong' else 'gained'}-row' "
        f"data-variant='{html.escape(f['variant'], quote=True)}' data-suite='{html.escape(f['suite'], quote=True)}' "
        f"data-direction='{f['direction']}'><td class=l>"
        f"{html.escape(f['variant'])}</td><td class=l>{html.escape(f['suite'])}</td><td class=l>{f['direction']}</td>"
        f"<td class=l><pre>{html.escape(f['prompt'])}</pre></td><td class=l>{html.escape(str(f['gold']))}</td>"
        f"<td class=l><pre>{html.escape(f['base_output'])}</pre></td>"
        f"<td class=l><pre>{html.escape(f['tuned_output'])}</pre></td></tr>" for f in flips)
    return ("<h2>Flipped items</h2><details id=flips><summary>Items whose verdict changed, both replies side by side "
            f"(a few per variant, suite and direction): {len(flips)} items, <span id=flips-shown>{len(flips)}</span> "
            f"shown</summary><p>{filters}</p><table class=flips><tr><th class=l>variant</th><th class=l>suite</th>"
            "<th class=l>flip</th><th class=l>prompt</th><th class=l>gold</th><th class=l>base reply</th>"
            f"<th class=l>tuned reply</th></tr>{rows}</table></details>")


def _plot(fig: go.Figure) -> str:
    return (f'<div class="plot">{fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})}'
            "</div>")


def _verdict_list(study: Study) -> str:
    roles = study.roles()
    summary = "".join(
        f"<li><b>{html.escape(v['variant'])}</b> — gained: <span class=gained>{html.escape(', '.join(v['gained']))}"
        f"</span>{'' if v['gained'] else 'none'}; lost: <span class=lost>{html.escape(', '.join(v['lost']))}</span>"
        f"{'' if v['lost'] else 'none shown'}; no loss beyond {100 * (v['margin'] or 0.05):.0f} pts: "
        f"{html.escape(', '.join(v['within'])) or 'none certified'}; cannot tell: <span class=unsure>"
        f"{html.escape('; '.join(cannot_tell_text(r) for r in v['cannot_tell'])) or 'none'}</span>; gate: "
        f"<span class={'lost' if v['gate'].startswith('FAILED') else 'gained'}>{html.escape(v['gate'])}</span></li>"
        for v in variant_summary(study))
    gate = gate_lines(study)
    gate_html = ("<p>" + html.escape(gate[1].replace("**", "")) + "</p><ul>" +
                 "".join(f"<li>{html.escape(line[2:])}</li>" for line in gate[2:]) + "</ul>") if gate else ""
    items = []
    for r in study.comparisons:
        v = verdict(r, roles[r.suite])
        items.append(f'<li><b>{html.escape(r.variant)}</b> on <code>{html.escape(r.suite)}</code> '
                     f'({roles[r.suite]}): <span class="{_css(v)}">{html.escape(v)}</span> — '
                     f'{100 * r.base_acc:.1f}% → {100 * r.tuned_acc:.1f}% '
                     f'({100 * r.diff:+.1f} pts, CI [{100 * r.ci95[0]:+.1f}, {100 * r.ci95[1]:+.1f}])</li>')
    note = f"<p class=floor>{html.escape(verdict_note(study))}</p>"
    start_html = ""
    if study.from_start:  # a variant that continued another (RL after SFT), against where it started
        heads = "".join(f"<li><b>{html.escape(v['variant'])}</b> against <code>{html.escape(v['against'])}</code> — "
                        f"{html.escape(verdict_line(v, gate=False))}</li>" for v in start_summary(study))
        rows = "".join(f"<li><b>{html.escape(r.variant)}</b> on <code>{html.escape(r.suite)}</code>: "
                       f"{html.escape(start_verdict(r, roles[r.suite]))} — {html.escape(r.against)} "
                       f"{100 * r.base_acc:.1f}% → {100 * r.tuned_acc:.1f}% ({100 * r.diff:+.1f} pts, CI "
                       f"[{100 * r.ci95[0]:+.1f}, {100 * r.ci95[1]:+.1f}])</li>" for r in study.from_start)
        start_html = ("<p>Against where it started (a variant that continued another, train.init_from; no gate):</p>"
                      f"<ul>{heads}</ul><details><summary>Every comparison against the start</summary><ul>{rows}"
                      "</ul></details>")
    return (f"<ul class=summary>{summary}</ul>{note}{gate_html}{start_html}<details><summary>Every comparison"
            "</summary><ul>" + "".join(items) + "</ul></details>")


def _strategy_table(study: Study) -> str:
    rows = strategy_rows(study)
    if not rows:
        return ""
    fmt = lambda x, spec: "n/a" if x is None else format(x, spec)  # noqa: E731
    body = "".join(
        f"<tr><td class=l>{html.escape(r['suite'])}</td><td class=l>{r['strategy']}</td>"
        f"<td class=l>{html.escape(r['model'])}</td><td>{100 * r['accuracy']:.1f}%</td>"
        f"<td>{100 * r['format']:.0f}%</td>"
        f"<td>{fmt(r['latency'], '.3f')}</td><td>{fmt(r['tokens_per_s'], '.0f')}</td>"
        f"<td class=l>{html.escape(r['own'])}</td></tr>" for r in rows)
    return ("<h2>Strategies × variants</h2><table><tr><th class=l>suite</th><th class=l>strategy</th>"
            "<th class=l>model</th><th>accuracy</th><th>format</th><th>latency p50 (s)</th><th>tokens/s</th>"
            f"<th class=l>the strategy's own metrics</th></tr>{body}</table>")


def _training_table(study: Study) -> str:
    if not study.variants:
        return ""
    body = "".join(
        f"<tr><td class=l>{html.escape(r['variant'])}</td><td class=l>{r['method']}</td>"
        f"<td>{r['trainable']:,}</td><td>{100 * r['fraction']:.3f}%</td><td class=l>{html.escape(r['targets'])}</td>"
        f"<td class=l>{html.escape(r['mix'])}</td>"
        f"<td>{r['steps']}</td><td>{r['tokens_per_s']:.0f}</td><td>{r['first_loss']}</td><td>{r['final_loss']}</td>"
        f"<td>{r['wall_s']:.0f}{' (train cache)' if r['cached'] else ''}</td></tr>" for r in training_rows(study))
    return ("<h2>Training</h2><table><tr><th class=l>variant</th><th class=l>method</th><th>trainable params</th>"
            "<th>fraction</th><th class=l>trained to write</th><th class=l>replay</th><th>steps</th><th>tokens/s</th>"
            f"<th>first loss</th><th>final loss</th><th>wall (s)</th></tr>{body}</table>")


def _css(verdict_text: str) -> str:
    return {"gained": "gained", "lost": "lost", "lost, within the margin": "lost", "cannot tell": "unsure"}.get(
        verdict_text, "floor" if verdict_text.startswith("at floor") else "")


def _table(study: Study) -> str:
    roles = study.roles()
    head = ("<tr><th class=l>variant</th><th class=l>suite</th><th class=l>role</th><th>n</th><th>chance</th>"
            "<th>base</th><th>tuned</th><th>diff (pts)</th><th>95% CI</th><th>McNemar p</th><th>adj. p</th>"
            "<th>MDE (pts)</th><th>items to certify</th><th>floor</th><th class=l>verdict</th></tr>")
    rows = "".join(
        f"<tr><td class=l>{html.escape(r.variant)}</td><td class=l>{html.escape(r.suite)}</td>"
        f"<td class=l>{roles[r.suite]}</td><td>{r.n}</td><td>{100 * r.chance:.1f}%</td>"
        f"<td>{100 * r.base_acc:.1f}%</td><td>{100 * r.tuned_acc:.1f}%</td><td>{100 * r.diff:+.1f}</td>"
        f"<td>[{100 * r.ci95[0]:+.1f}, {100 * r.ci95[1]:+.1f}]</td><td>{r.mcnemar_p:.3g}</td>"
        f"<td>{'n/a' if r.p_adj is None else format(r.p_adj, '.3g')}</td>"
        f"<td>{'none' if r.mde is None else format(100 * r.mde, '.1f')}</td>"
        f"<td>{'n/a' if r.n_to_certify is None else r.n_to_certify}</td>"
        f"<td>{'yes' if r.floor else 'no'}</td><td class='l card {WORDS[verdict(r, roles[r.suite])][1]}'>"
        f"{WORDS[verdict(r, roles[r.suite])][0]}</td></tr>" for r in study.comparisons)
    return f"<div class=wide><table>{head}{rows}</table></div>"
