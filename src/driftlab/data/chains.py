"""Gold chains of thought: a deterministic step-by-step solution written from the item, one writer per task family.

A chain is the reasoning only; the training target is the chain followed by the target's answer line
(`completion_template`, e.g. "Answer: 112"), so a model trained on chains still ends in the format the eval reads.
Every arithmetic step is written as `a op b = c` with two operands, the form the faithfulness probes corrupt and the
chain-integrity check verifies (probes/faithfulness.py STEP).

reasoning-gym's own items carry no worked solution in their metadata (checked for reasoning-gym 0.1.x: its
"solution" fields hold answers, not steps), so the writers below are the only source. A family without a writer is
one clear error that lists those that exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from driftlab.errors import DataError

PLACES = ["Ones", "Tens", "Hundreds", "Thousands", "Ten-thousands", "Hundred-thousands"]
CHAIN_WRITERS: dict[str, Callable[[dict], str]] = {}


def chain_writer(*families: str):
    """Register a writer for these task families (reasoning-gym task names, or a JSONL suite's `task`)."""
    def register(fn):
        for family in families:
            CHAIN_WRITERS[family] = fn
        return fn
    return register


def gold_chain(item: dict, family: str | None, key: str) -> str:
    """The gold chain for one item; `key` names the config key in errors."""
    writer = CHAIN_WRITERS.get(family or "")
    if writer is None:
        raise DataError(f"config key '{key}': no gold chain writer for task {family!r}; writers exist for: "
                        f"{', '.join(sorted(CHAIN_WRITERS))} (or train on self-distilled chains instead)")
    return writer(item)


@chain_writer("basic_arithmetic", "chain_sum")
def arithmetic_chain(item: dict) -> str:
    """Two terms: column by column, with carries or borrows. More terms: running partial results, left to right."""
    terms, ops = parse_expression(item)
    if len(terms) == 2:
        return column_chain(terms[0], ops[0], terms[1])
    lines, acc = [], terms[0]
    for op, term in zip(ops, terms[1:]):
        new = acc + term if op == "+" else acc - term
        lines.append(f"{acc} {op} {term} = {new}")
        acc = new
    return "\n".join(lines + [f"So the result is {acc}."])


def parse_expression(item: dict) -> tuple[list[int], list[str]]:
    """Integer terms and the +/- between them, from reasoning-gym's metadata `expression` (or the question)."""
    text = item.get("meta", {}).get("expression") or item["question"]
    found = re.findall(r"(?<![\d)])(-?\d+)|([+-])", text.replace("−", "-"))
    terms = [int(num) for num, _ in found if num]
    ops = [op for _, op in found if op]
    if len(terms) < 2 or len(ops) != len(terms) - 1 or re.search(r"[*/×÷()]", text):
        raise DataError(f"gold chain: cannot read a +/- expression of integers from {text!r}")
    return terms, ops


def column_chain(a: int, op: str, b: int) -> str:
    if a < 0 or b < 0:  # allow_negation: no columns for signed operands, one step
        return f"{a} {op} {b} = {a + b if op == '+' else a - b}"
    if op == "+":
        return "\n".join(_add_columns(a, b) + [f"So {a} + {b} = {a + b}."])
    if a >= b:
        return "\n".join(_subtract_columns(a, b) + [f"So {a} - {b} = {a - b}."])
    return "\n".join([f"{a} is less than {b}, so subtract the other way and make the result negative."]
                     + _subtract_columns(b, a) + [f"So {a} - {b} = {a - b}."])


def _digits(n: int, width: int) -> list[int]:
    return [int(d) for d in str(n).zfill(width)[::-1]]  # ones first


def _add_columns(a: int, b: int) -> list[str]:
    width = len(str(max(a, b)))
    xs, ys, carry, lines = _digits(a, width), _digits(b, width), 0, []
    for i, (x, y) in enumerate(zip(xs, ys)):
        line = f"{_place(i)}: {x} + {y} = {x + y}"
        total = x + y + carry
        if carry:
            line += f", {x + y} + {carry} = {total}"
        last = i == width - 1
        carry = 0 if last else total // 10
        line += f", write {total}." if last else (f", write {total % 10}, carry {carry}." if carry else ".")
        lines.append(line)
    return lines


def _subtract_columns(a: int, b: int) -> list[str]:
    width = len(str(a))
    xs, ys, borrow, lines = _digits(a, width), _digits(b, width), 0, []
    for i, (x, y) in enumerate(zip(xs, ys)):
        parts = []
        if borrow:
            parts.append(f"{x} - {borrow} = {x - borrow} after the borrow")
            x -= borrow
        if x < y:
            parts.append(f"{x} is less than {y}, so borrow 1: {x + 10} - {y} = {x + 10 - y}")
            result, borrow = x + 10 - y, 1
        else:
            parts.append(f"{x} - {y} = {x - y}")
            result, borrow = x - y, 0
        lines.append(f"{_place(i)}: " + ", ".join(parts) + f", write {result}.")
    return lines


def _place(i: int) -> str:
    return PLACES[i] if i < len(PLACES) else f"Column {i + 1}"
