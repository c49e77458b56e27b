"""Surface perturbations for out-of-distribution suites: same difficulty, different surface.

A fine-tune that learned the task keeps its score under these; one that learned the template loses it. Each
perturbation is deterministic per item (seeded) and keeps the gold answer correct (recomputing it where the
perturbation changes it).

reorder_sentences  shuffle the statements before the final question (fact order must not matter)
renumber           replace every integer of an arithmetic expression by another of the same length; gold
                   recomputed exactly
"""

from __future__ import annotations

import ast
import operator
import random
import re
from fractions import Fraction

from driftlab.errors import DataError

PERTURBATIONS = ("reorder_sentences", "renumber")


def perturb_item(item: dict, kinds: list[str], rng: random.Random, suite: str) -> dict:
    item = dict(item)
    for kind in kinds:
        if kind == "reorder_sentences":
            item["question"] = reorder_sentences(item["question"], rng)
        elif kind == "renumber":
            item["question"], item["answer"] = renumber(item["question"], rng, suite)
    return item


def reorder_sentences(text: str, rng: random.Random) -> str:
    """Shuffle the sentences of the first paragraph (the facts); later paragraphs (the question) stay in place."""
    head, sep, tail = text.partition("\n\n")
    # A sentence ends at . ! ? followed by whitespace and a capital letter: "3.5" and "Mr. Smith" do not split.
    sentences = [s for s in re.split(r"(?<=[.!?])(?<!Mr\.)(?<!Ms\.)(?<!Dr\.)(?<!St\.)(?<!Mrs\.)\s+(?=[A-Z])",
                                     head.strip()) if s]
    if len(sentences) < 2:
        return text
    shuffled = sentences[:]
    for _ in range(5):  # prefer an order that differs from the original
        rng.shuffle(shuffled)
        if shuffled != sentences:
            break
    return " ".join(s.strip() for s in shuffled) + sep + tail


EXPRESSION = re.compile(r"[-+*/()\d\s]*\d[-+*/()\d\s]*")
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def renumber(question: str, rng: random.Random, suite: str) -> tuple[str, str]:
    """New integers of the same digit count in the question's arithmetic expression; the answer is recomputed
    exactly (fractions), and a division that no longer comes out whole is redrawn."""
    match = max(EXPRESSION.finditer(question), key=lambda m: len(m.group().strip()), default=None)
    if match is None or not re.search(r"[-+*/]", match.group().strip().lstrip("-")):
        raise DataError(f"suite '{suite}': perturbation 'renumber' found no arithmetic expression in {question!r}")
    expr = match.group()
    if re.search(r"\d[.,]\d", question):
        raise DataError(f"suite '{suite}': 'renumber' supports integers only, found a decimal or thousands "
                        f"separator in {question!r}")
    for _ in range(50):
        new_expr = re.sub(r"\d+", lambda m: _same_length_int(m.group(), rng), expr)
        value = _evaluate(new_expr.strip(), suite)
        if value is not None and value.denominator == 1:
            return question[: match.start()] + new_expr + question[match.end() :], str(value.numerator)
    raise DataError(f"suite '{suite}': could not renumber {expr.strip()!r} to a whole-number answer")


def _same_length_int(digits: str, rng: random.Random) -> str:
    if len(digits) == 1:
        return str(rng.randint(1, 9))
    return str(rng.randint(10 ** (len(digits) - 1), 10 ** len(digits) - 1))


def _evaluate(expr: str, suite: str) -> Fraction | None:
    """Exact value of + - * / ( ) integer arithmetic. ast, not eval(): the text comes from data files."""
    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ZeroDivisionError
            return OPS[type(node.op)](left, right)
        raise ValueError(f"unsupported expression element {ast.dump(node)}")

    try:
        return walk(ast.parse(expr, mode="eval").body)
    except ZeroDivisionError:
        return None
    except (SyntaxError, ValueError) as err:
        raise DataError(f"suite '{suite}': cannot evaluate {expr!r} for 'renumber': {err}") from None
