"""Calibration for issue 17's multi-step family: the base model's accuracy by number of steps, under the prompt
forms tried so far. Prints one line per (family, steps): strict and lenient accuracy of 50 items, replies cut by the
token budget, and the most common gold answer's share (a chance proxy). One-off measurement, not a test:

    DRIFTLAB_HOME=... .venv/bin/python scripts/measure_multistep.py [--model embedded]

Families: `cot` — reasoning-gym basic_arithmetic, k single-digit terms (+, or + and -), the target's template plus the
cot strategy's instruction; `oneshot` — the same items with a worked example in the prompt (one number at a time);
`small` — k terms drawn from 1..3 or 1..5, cot; `mixed` — one two-digit number and k - 1 small ones with a worked
example of three terms (the default study's `multistep`); `chase` — "A has 4 apples. B has as many apples as A. ..." with k hops
and one distractor.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from driftlab.data.sources import reasoning_gym_items
from driftlab.eval.extract import extract_answer
from driftlab.eval.hf_backend import HFBackend
from driftlab.eval.scoring import score
from driftlab.eval.strategies.cot import cot_prompt
from driftlab.models import load_model, resolve_model

TEMPLATE = "{question}\nReply with only the final line 'Answer: <number>'."
ONESHOT = ("Add the numbers one at a time, then give the final line 'Answer: <number>'. Example:\n"
           "Calculate 3 + 5 + 2.\n3 + 5 = 8\n8 + 2 = 10\nAnswer: 10\n\nNow: {question}")
MIXED = ("Add the numbers one at a time, then give the final line 'Answer: <number>'. Example:\n"
         "Calculate 41 + 2 + 3.\n41 + 2 = 43\n43 + 3 = 46\nAnswer: 46\n\nNow: {question}")  # configs/default.yaml
NAMES = ["Tom", "Ann", "Bob", "Sue", "Max", "Eva", "Joe", "Liz"]


def arithmetic(k: int, ops: list[str]) -> list[tuple[str, str]]:
    kw = {"min_terms": k, "max_terms": k, "min_digits": 1, "max_digits": 1, "operators": ops,
          "allow_parentheses": False, "allow_negation": False}
    return [(it["question"], it["answer"]) for it in reasoning_gym_items("basic_arithmetic", kw, 50, 11, "k")]


def small(k: int, hi: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(50):
        terms = [rng.randint(1, hi) for _ in range(k)]
        out.append((f"Calculate {' + '.join(map(str, terms))}.", str(sum(terms))))
    return out


def mixed(k: int, rng: random.Random) -> list[tuple[str, str]]:
    """The family the default study uses (bundled multistep.jsonl): one two-digit number and k - 1 of 1..3."""
    out = []
    for _ in range(50):
        terms = [rng.randint(10, 89)] + [rng.randint(1, 3) for _ in range(k - 1)]
        out.append((f"Calculate {' + '.join(map(str, terms))}.", str(sum(terms))))
    return out


def chase(k: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(50):
        first, other = rng.sample(range(1, 10), 2)
        who = rng.sample(NAMES, k + 2)
        facts = [f"{who[0]} has {first} apples.", f"{who[-1]} has {other} apples."]
        facts += [f"{who[i + 1]} has as many apples as {who[i]}." for i in range(k)]
        out.append((" ".join(facts) + f" How many apples does {who[k]} have?", str(first)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    args = ap.parse_args()
    lm, tok = load_model(resolve_model(args.model))
    backend = HFBackend(lm, tok, batch_size=64)
    rng = random.Random(3)
    runs = []
    for k in (2, 3, 4, 5):
        runs += [("cot +", k, arithmetic(k, ["+"]), lambda q: cot_prompt(TEMPLATE.replace("{question}", q))),
                 ("cot +-", k, arithmetic(k, ["+", "-"]), lambda q: cot_prompt(TEMPLATE.replace("{question}", q))),
                 ("oneshot +", k, arithmetic(k, ["+"]), lambda q: ONESHOT.replace("{question}", q)),
                 ("small 1..3", k, small(k, 3, rng), lambda q: cot_prompt(TEMPLATE.replace("{question}", q))),
                 ("chase", k, chase(k, rng), lambda q: cot_prompt(TEMPLATE.replace("{question}", q))),
                 ("mixed", k, mixed(k, rng), lambda q: MIXED.replace("{question}", q))]
    for family, k, items, prompt in runs:
        gens = backend.generate([prompt(q) for q, _ in items], 128)
        strict = sum(g.finish != "length" and score(extract_answer(g.text, "numeric", "strict").answer, a,
                                                    "numeric")[0] for g, (_, a) in zip(gens, items))
        lenient = sum(score(extract_answer(g.text, "numeric", "lenient").answer, a, "numeric")[0]
                      for g, (_, a) in zip(gens, items))
        top = Counter(a for _, a in items).most_common(1)[0][1]
        cut = sum(g.finish == "length" for g in gens)
        print(f"{family:11s} {k} terms/hops: strict {strict:2d}/50  lenient {lenient:2d}/50  cut {cut}  "
              f"most common answer {top}/50", flush=True)


if __name__ == "__main__":
    main()
