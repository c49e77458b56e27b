"""Automatic error taxonomy for one generated reply: which ways it went wrong, checked mechanically.

empty                     nothing visible was produced
truncated                 the token budget ran out (mid-answer or mid-thought)
repetition_loop           the same 3-word phrase repeats at least 3 times in a row-ish (a degenerate loop)
format_violation          no explicit answer format (`Answer:` line or \\boxed{}) was used
arithmetic_error          a stated step `a op b = c` is false
answer_contradicts_chain  the final answer differs from the result of the last stated step
hallucinated_quantity     a step uses a number that neither the question nor an earlier step produced
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

# A step "a op b = c": the first operand must not be glued to a word or a decimal point before it.
STEP = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*([-+*/×x÷])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
CHAINED = re.compile(r"[-+*/×x÷]\s*$")
NUMBER = re.compile(r"\d+(?:\.\d+)?")  # unsigned: in "45-23" the minus is an operator, not a sign
TAGS = ("empty", "truncated", "repetition_loop", "format_violation", "arithmetic_error",
        "answer_contradicts_chain", "hallucinated_quantity")


def error_tags(output: str, question: str, extracted: str | None, finish: str, format_ok: bool,
               thinking_truncated: bool = False, expects_format: bool = True) -> list[str]:
    tags = []
    text = output.replace(",", "")
    if not output.strip():
        return ["empty"] + (["truncated"] if finish == "length" else [])
    if finish == "length" or thinking_truncated:
        tags.append("truncated")
    if has_repetition_loop(output):
        tags.append("repetition_loop")
    if expects_format and not format_ok:
        tags.append("format_violation")
    # "12 + 34 + 5 = 51" is one chained expression, not the false step "34 + 5 = 51": skip matches that continue
    # an expression to their left.
    matches = [m for m in STEP.finditer(text) if not CHAINED.search(text[: m.start()])]
    steps = [(_num(a), op, _num(b), _num(c)) for a, op, b, c in (m.groups() for m in matches)]
    steps = [s for s in steps if None not in (s[0], s[2], s[3])]
    if any(not _step_holds(a, op, b, c) for a, op, b, c in steps):
        tags.append("arithmetic_error")
    final = _num(extracted) if extracted is not None else None
    if steps and final is not None and steps[-1][3] != final:
        tags.append("answer_contradicts_chain")
    known = {_num(n) for n in NUMBER.findall(question.replace(",", ""))}
    for a, _, b, c in steps:
        if abs(a) not in known or abs(b) not in known:
            tags.append("hallucinated_quantity")
            break
        known.add(abs(c))
    return tags


def has_repetition_loop(text: str, max_period: int = 12, min_repeats: int = 3) -> bool:
    """A block of 1..max_period words repeated back to back at least min_repeats times ("I think so. I think so.
    I think so."). Words recurring far apart, as in ordinary reasoning, are not a loop."""
    words = text.split()
    for period in range(1, max_period + 1):
        run = 0
        for i in range(period, len(words)):
            run = run + 1 if words[i] == words[i - period] else 0
            if run >= period * (min_repeats - 1):
                return True
    return False


def tag_rates(records: list[dict]) -> dict[str, float]:
    n = len(records)
    counts = Counter(tag for r in records for tag in r.get("errors", []))
    return {tag: counts[tag] / n for tag in TAGS} if n else {}


def _step_holds(a: Decimal, op: str, b: Decimal, c: Decimal) -> bool:
    if op == "+":
        return a + b == c
    if op == "-":
        return a - b == c
    if op in "*×x":
        return a * b == c
    return b != 0 and abs(a / b - c) < Decimal("0.01")


def _num(text: str | None) -> Decimal | None:
    try:
        return Decimal(text).normalize() if text is not None else None
    except InvalidOperation:
        return None
