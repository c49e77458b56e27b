"""Automatic error taxonomy for one generated reply: which ways it went wrong, checked mechanically.

empty                     nothing visible was produced
truncated                 the token budget ran out (mid-answer or mid-thought)
repetition_loop           the same 3-word phrase repeats at least 3 times in a row-ish (a degenerate loop)
format_violation          no explicit answer format (`Answer:` line or \\boxed{}) was used
arithmetic_error          a stated step `a op b [op ...] = c` is false, or the parts of "Split N into a and b" do
                          not add up to N
answer_contradicts_chain  the final answer differs from the result of the last stated equation
unsupported_number        a step uses a number with no source: not in the question, not produced by an earlier step
                          (an equation's result, a split's parts), not a small integer, a common constant (CONSTANTS)
                          or a factor between units the question names (UNIT_FACTORS)
no_answer                 a wrong reply that none of the above explains, and from which no answer was extracted
wrong_value               a wrong reply that none of the above explains: an answer was given, its value is wrong

The last two are residual: they make every reply scored wrong carry at least one tag, so a model that answers
cleanly and wrongly does not look error-free. A reply scored correct keeps its mechanical tags (a false step or a
missing format in a right answer is still worth counting) and never gets a residual one; with `correct=None`
(correctness unknown) only the mechanical tags are computed. Tags depend on the reply text and its score alone,
never on whether the generation came from the results store.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

# A step "a op b [op ...] = c", taken whole so that "12 + 30 + 5 = 47" is one true step (not the false "30 + 5 =
# 47") whose result later steps may use. The first operand must not be glued to a word or a decimal point before it;
# c is only looked at, not consumed, so "3 + 4 = 7 * 2 = 14" is two steps.
OPERAND = r"-?\d+(?:\.\d+)?"
STEP = re.compile(rf"(?<![\w.])({OPERAND}(?:\s*[-+*/×x÷]\s*{OPERAND})+)\s*=\s*(?=({OPERAND}))")
TOKEN = re.compile(r"\d+(?:\.\d+)?|[-+*/×x÷]")
# "Split 379 into 300, 70 and 9." (data.chains writes these; commas are gone by the time it is read): the parts are
# produced by the step, if they add up to the number split.
SPLIT = re.compile(rf"\bsplit\s+({OPERAND})\s+into\s+((?:{OPERAND}\s+)+and\s+{OPERAND})", re.IGNORECASE)
NUMBER = re.compile(r"\d+(?:\.\d+)?")  # unsigned: in "45-23" the minus is an operator, not a sign
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b)", re.IGNORECASE)
TAGS = ("empty", "truncated", "repetition_loop", "format_violation", "arithmetic_error",
        "answer_contradicts_chain", "unsupported_number", "no_answer", "wrong_value")

# Numbers a step may use whatever the question says: halves and quarters, a dozen, time (days a week, months,
# hours, minutes, seconds an hour, weeks and days a year), percent and the metric/binary prefixes, pi. Integers
# 0..SMALL_INT are supported too: "twice", "a pair", "three sides" say them in words.
CONSTANTS = frozenset(Decimal(x).normalize() for x in (
    "0.5", "0.25", "12", "24", "52", "60", "100", "365", "1000", "1024", "3600", "3.14", "3.1416", "3.14159"))
SMALL_INT = 10

# Unit words, matched as whole words, case-insensitively. Abbreviations only where they cannot be an ordinary word
# ("in", "m", "g", "l" can).
UNITS = {name: re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE) for name, pattern in {
    "inch": r"inch(?:es)?", "foot": r"foot|feet|ft", "yard": r"yards?|yds?", "mile": r"miles?",
    "cm": r"centimet(?:er|re)s?|cm", "meter": r"met(?:er|re)s?", "km": r"kilomet(?:er|re)s?|km",
    "ounce": r"ounces?|oz", "pound": r"pounds?|lbs?", "gram": r"grams?", "kg": r"kilograms?|kgs?",
    "cup": r"cups?", "gallon": r"gallons?", "liter": r"lit(?:er|re)s?",
}.items()}
# Conversion factors by unit pair, with the roundings people use. Metric prefixes (100, 1000) are in CONSTANTS.
UNIT_FACTORS = {
    ("inch", "foot"): ("12",), ("inch", "yard"): ("36",), ("foot", "mile"): ("5280",), ("yard", "mile"): ("1760",),
    ("inch", "cm"): ("2.54",), ("foot", "meter"): ("0.3048", "3.28", "3.281"), ("inch", "meter"): ("39.37",),
    ("mile", "km"): ("1.6", "1.609", "1.61", "0.621", "0.6214"), ("ounce", "pound"): ("16",),
    ("pound", "kg"): ("2.2", "2.2046", "0.45", "0.454", "0.4536"), ("ounce", "gram"): ("28.35", "28.3"),
    ("cup", "gallon"): ("16",), ("gallon", "liter"): ("3.785", "3.79"),
}


def error_tags(output: str, question: str, extracted: str | None, finish: str, format_ok: bool,
               thinking_truncated: bool = False, expects_format: bool = True,
               correct: bool | None = None) -> list[str]:
    """The reply's tags (see the module docstring); `correct` is the scorer's verdict, None if unknown."""
    tags = _mechanical_tags(output, question, extracted, finish, format_ok, thinking_truncated, expects_format)
    if correct is False and not tags:
        tags.append("no_answer" if extracted is None or not extracted.strip() else "wrong_value")
    return tags


def _mechanical_tags(output: str, question: str, extracted: str | None, finish: str, format_ok: bool,
                     thinking_truncated: bool, expects_format: bool) -> list[str]:
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
    steps = chain_steps(text)
    if any(not s.holds for s in steps):
        tags.append("arithmetic_error")
    equations = [s for s in steps if s.result is not None]
    final = _num(extracted) if extracted is not None else None
    if equations and final is not None and equations[-1].result != final:
        tags.append("answer_contradicts_chain")
    asked = question.replace(",", "")
    known = {_num(n) for n in NUMBER.findall(asked)} | CONSTANTS | unit_factors(question, output)
    known |= {(_num(n) / 100).normalize() for n in PERCENT.findall(asked)}  # "20%" is used as 0.2
    for step in steps:
        if not all(_supported(n, known) for n in step.uses):
            tags.append("unsupported_number")
            break
        known.update(abs(n) for n in step.gives)
    return tags


class Step(NamedTuple):
    uses: list[Decimal]  # the numbers the step starts from
    gives: list[Decimal]  # the numbers it produces, which later steps may use
    holds: bool
    result: Decimal | None  # the stated value of an equation; None for a split


def chain_steps(text: str) -> list[Step]:
    """The equations ("a op b = c") and splits ("Split 38 into 30 and 8.") of a reply, in the order written."""
    found = []
    for m in STEP.finditer(text):
        operands, ops = _operands(m.group(1))
        c = _num(m.group(2))
        if c is not None and len(operands) == len(ops) + 1:
            found.append((m.start(), Step(operands, [c], _step_holds(operands, ops, c), c)))
    for m in SPLIT.finditer(text):
        whole, parts = _num(m.group(1)), [_num(n) for n in NUMBER.findall(m.group(2))]
        found.append((m.start(), Step([whole], parts, sum(parts) == whole, None)))
    return [step for _, step in sorted(found, key=lambda pair: pair[0])]


def unit_factors(question: str, output: str) -> set[Decimal]:
    """The conversion factors a reply may use: those of a unit pair with one unit named in the question and the
    other in the question or the reply, so "miles to inches" may go through feet (5280, then 12) while a 12 in a
    question about feet that no one converts to inches stays unsupported."""
    asked = {u for u, pattern in UNITS.items() if pattern.search(question)}
    said = asked | {u for u, pattern in UNITS.items() if pattern.search(output)}
    return {Decimal(f).normalize() for (u, v), factors in UNIT_FACTORS.items()
            if (u in asked and v in said) or (v in asked and u in said) for f in factors}


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


def _supported(n: Decimal, known: set[Decimal]) -> bool:
    n = abs(n)
    return n in known or (n <= SMALL_INT and n == n.to_integral_value())


def _operands(expr: str) -> tuple[list[Decimal], list[str]]:
    """Operands and operators of "a op b [op ...]"; a minus where an operand is due is its sign."""
    operands, ops, sign = [], [], 1
    for tok in TOKEN.findall(expr):
        if len(operands) > len(ops):
            ops.append(tok)
        elif tok == "-":
            sign = -sign
        else:
            operands.append(sign * _num(tok))
            sign = 1
    return operands, ops


def _step_holds(operands: list[Decimal], ops: list[str], c: Decimal) -> bool:
    """Evaluated with * and / before + and -. A result stated to k decimals may be the exact value rounded to k
    decimals (a conversion "5 * 1.609 = 8.05" is right); a quotient may also be off by 0.01."""
    terms, signs = [operands[0]], []
    for op, n in zip(ops, operands[1:]):
        if op in "+-":
            terms.append(n)
            signs.append(op)
        elif op in "*×x":
            terms[-1] *= n
        elif n == 0:
            return False
        else:
            terms[-1] /= n
    value = terms[0]
    for op, t in zip(signs, terms[1:]):
        value = value + t if op == "+" else value - t
    places = max(0, -c.as_tuple().exponent)
    rounding = Decimal(5).scaleb(-places - 1) if places else Decimal(0)
    division = Decimal("0.01") if any(op in "/÷" for op in ops) else Decimal(0)
    return abs(value - c) <= max(rounding, division)


def _num(text: str | None) -> Decimal | None:
    try:
        return Decimal(text).normalize() if text is not None else None
    except InvalidOperation:
        return None
