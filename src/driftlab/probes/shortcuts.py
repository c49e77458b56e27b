"""Shortcuts: answers that come from somewhere other than the computation.

copied_from_prompt     the (wrong) answer is a number that appears in the question (zero-shot replies)
copied_from_exemplars  the (wrong) answer is an answer of one of the few-shot exemplars shown (few-shot replies)
repeated_answer        the (wrong) answer is a stock one: the model gives it to at least `repeat_min` items of the
                       slice (zero-shot replies) — one answer for many questions
skipped_computation    asked to reason step by step on an item that needs an operation, the reply shows no step
                       (no `a op b` and no `=`) — it jumped to an answer
template_flip          the item answered right under one phrasing and wrong under another at equal difficulty
                       (the target template vs `probes.alt_template`): sensitivity to the surface, not the task
Each is a per-item flag, so base vs tuned is paired; a *rise* after tuning is the bad direction. Answers are read
leniently whatever the suite's extraction (a number the model gave is a number it gave, format or not).
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import Field

from driftlab.config import StrategyConfig, SuiteConfig
from driftlab.eval.backend import Backend
from driftlab.eval.extract import extract_answer
from driftlab.eval.scoring import score
from driftlab.eval.strategies import run_strategy, zero_shot_config
from driftlab.eval.strategies.few_shot import few_shot_messages
from driftlab.probes import PROBES, Probe
from driftlab.registry import Metric, Options

class ShortcutOptions(Options):
    alt_template: str | None = Field(
        "Solve this: {question}\nWrite your final line as 'Answer: <number>'.",
        description="Shortcuts: another phrasing of the probe suite at equal difficulty (None: skip template_flip).")
    repeat_min: int = Field(3, ge=2, description="Shortcuts: a wrong answer the model gives to at least this many "
                            "items of the slice is a stock answer (repeated_answer).")


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
OPERATION = re.compile(r"\d\s*[-+*/×x]\s*\d")


def _num(x: str | None) -> float | None:
    try:
        return float(x) if x is not None else None
    except ValueError:
        return None


def shortcuts(backend: Backend, items: list[dict], suite: SuiteConfig, shots: list[dict], max_new_tokens: int,
              cot: StrategyConfig, alt_template: str | None, k: int = 3,
              asked: dict[str, list[dict]] | None = None, repeat_min: int = 3) -> list[dict]:
    """One row per item. `asked`: per strategy (zero_shot, cot, few_shot), the items to send its request with
    (ProbeContext.covering; `items` first), so the eval's replies come back from the store."""
    asked = asked or {}

    def ask(strategy: StrategyConfig, name: str) -> list:
        request = asked.get(name) or items
        return run_strategy(strategy, backend, request, suite, max_new_tokens, shots)[: len(items)]

    zero = ask(zero_shot_config(), "zero_shot")
    cot_out = ask(cot, "cot")
    few = ask(StrategyConfig(name="few_shot", k=k), "few_shot") if len(shots) >= k else None
    exemplars = few_shot_messages(asked.get("few_shot") or items, shots, k) if few else None
    alt = None
    if alt_template:
        alt_items = [{**it, "prompt": alt_template.replace("{question}", it["question"]), "shared_prefix": ""}
                     for it in items]  # another template: the suite's shared text is not its start
        alt = run_strategy(zero_shot_config(), backend, alt_items, suite, max_new_tokens, shots)
    answers = [_num(extract_answer(out.generation.text, suite.scorer, "lenient").answer) for out in zero]
    given = Counter(a for a in answers if a is not None)
    rows = []
    for i, it in enumerate(items):
        gold = _num(it["answer"])

        def copied(text: str, sources: list[str]) -> bool:
            ans = _num(extract_answer(text, suite.scorer, "lenient").answer)
            seen = {float(n) for s in sources for n in NUMBER.findall(s)}
            return ans is not None and ans != gold and ans in seen

        row = {"id": it["id"], "copied_from_prompt": copied(zero[i].generation.text, [it["question"]]),
               "repeated_answer": answers[i] is not None and answers[i] != gold and given[answers[i]] >= repeat_min}
        if few is not None:
            shown = [m["content"] for m in exemplars[i][:-1] if m["role"] == "assistant"]
            row["copied_from_exemplars"] = copied(few[i].generation.text, shown)
        needs_step = bool(OPERATION.search(it["question"]))
        text = cot_out[i].generation.text
        row["skipped_computation"] = needs_step and not (OPERATION.search(text) or "=" in text)
        if alt is not None:
            def right(out) -> bool:
                answer = extract_answer(out.generation.text, suite.scorer, "lenient").answer
                return bool(score(answer, it["answer"], suite.scorer, it.get("choices"))[0])

            row["template_flip"] = right(zero[i]) != right(alt[i])
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    keys = ("copied_from_prompt", "repeated_answer", "copied_from_exemplars", "skipped_computation",
            "template_flip")
    return {"n": len(rows), **{k: sum(r[k] for r in rows) / len(rows) for k in keys if rows and k in rows[0]}}


def _run(ctx, opts: ShortcutOptions) -> tuple[list[dict], dict]:
    few = ctx.strategy("few_shot")
    asked = {"zero_shot": ctx.covering(ctx.strategy("zero_shot")), "cot": ctx.covering(ctx.cot()),
             "few_shot": ctx.covering(few) if few is not None and few.options.k == 3 else None}
    rows = shortcuts(ctx.backend, ctx.items, ctx.suite, ctx.shots, ctx.eval_cfg.max_new_tokens, ctx.cot(),
                     opts.alt_template, asked=asked, repeat_min=opts.repeat_min)
    return rows, summary(rows)


PROBES.register(Probe(name="shortcuts", summary="answers that come from somewhere other than the computation",
                      order=40,
                      options=ShortcutOptions, run=_run, metrics=(
    Metric("copied_from_prompt", "lower", "wrong answer copied from the question"),
    Metric("repeated_answer", "lower", "wrong answer given to many items (a stock answer)"),
    Metric("copied_from_exemplars", "lower", "wrong answer copied from a few-shot exemplar"),
    Metric("skipped_computation", "lower", "no step shown where one is needed"),
    Metric("template_flip", "lower", "right under one phrasing, wrong under another"))))
