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
    """Running partial results, left to right; a term of more than one digit is taken by place value, largest
    first ("47 - 38": split 38 into 30 and 8; 47 - 30 = 17; 17 - 8 = 9). Chosen over column-by-column steps with
    carries and borrows, which the first version wrote: every step is still one `a op b = c` the integrity check
    verifies, and the same chain form covers two terms and many, but at a third of the length (the 2-digit target:
    ~25 tokens against 67 on average, up to 145 for a negative result) — training time on the CPU is per token."""
    terms, ops = parse_expression(item)
    lines, acc = [], terms[0]
    for op, term in zip(ops, terms[1:]):
        parts = place_values(term)
        if len(parts) > 1:
            lines.append(f"Split {term} into {', '.join(map(str, parts[:-1]))} and {parts[-1]}.")
        for part in parts:
            new = acc + part if op == "+" else acc - part
            lines.append(f"{acc} {op} {part} = {new}")
            acc = new
    return "\n".join(lines)


def place_values(n: int) -> list[int]:
    """The non-zero place values of n, largest first (305 -> [300, 5]); a negative or one-digit n is itself."""
    if n < 10:
        return [n]
    digits = str(n)
    return [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]  # digit 0 is not 0


def parse_expression(item: dict) -> tuple[list[int], list[str]]:
    """Integer terms and the +/- between them, from reasoning-gym's metadata `expression` (or the question)."""
    text = item.get("meta", {}).get("expression") or item["question"]
    found = re.findall(r"(?<![\d)])(-?\d+)|([+-])", text.replace("−", "-"))
    terms = [int(num) for num, _ in found if num]
    ops = [op for _, op in found if op]
    if len(terms) < 2 or len(ops) != len(terms) - 1 or re.search(r"[*/×÷()]", text):
        raise DataError(f"gold chain: cannot read a +/- expression of integers from {text!r}")
    return terms, ops
