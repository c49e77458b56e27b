"""Surface perturbations for out-of-distribution suites: same difficulty, different surface.

A fine-tune that learned the task keeps its score under these; one that learned the template loses it. Each
perturbation is deterministic per item (seeded) and keeps the gold answer correct (recomputing it where the
perturbation changes it).

reorder_sentences  shuffle the statements before the final question (fact order must not matter)
renumber           replace every integer of an arithmetic expression by another of the same length; gold
                   recomputed exactly
rename_entities    replace every known first name by an unusual one of the same gender, consistently across
                   question, answer and metadata (a relation like "wife" stays right)
"""

from __future__ import annotations

import ast
import operator
import random
import re
from fractions import Fraction

from driftlab.errors import DataError

PERTURBATIONS = ("reorder_sentences", "renumber", "rename_entities")

# Names recognised in items: common English first names (reasoning-gym's family_relationships draws from these);
# names that are mostly common words (River, Grace, Winter, Sky, Rain, Sage) are left out so no ordinary word is
# renamed.
KNOWN_NAMES = {
    "male": """James John Robert Michael William David Richard Joseph Thomas Charles Peter Daniel Matthew Christopher
        Andrew George Edward Benjamin Henry Samuel Alexander Oliver Jack Harry Jacob Noah Ethan Lucas Mason Logan
        Sebastian Theodore Owen Liam Aiden Kai Jayden Axel Ryder Finn Paul Mark Steven Kevin Brian Tom Bob Alex
        Max Leo Adam Ben Sam Tim Carl Eric Frank Greg Jim Joe Ken Luke Mike Ryan Scott Zion Phoenix Atlas""".split(),
    "female": """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Emma Lisa Anna Margaret
        Victoria Charlotte Sophia Isabella Olivia Ava Mia Emily Abigail Amelia Eleanor Alice Lucy Chloe Sophie Lily
        Hannah Zoe Aria Julia Laura Helen Kate Amy Beth Clara Diana Ella Eva Fiona Jane Kim Lena Nina Rachel
        Rose Sara Tina Luna Nova Willow Aurora""".split(),
}
# Replacements the model has rarely seen in such puzzles: same gender, so relations stay correct.
NEW_NAMES = {
    "male": """Anselm Bartholomew Casimir Dmitri Emeric Florian Gunnar Horatio Ignatius Jasper Leopold Matthias
        Nikolai Osvald Percival Quentin Rafferty Sigmund Tobias Ulrich Vitus Wendelin""".split(),
    "female": """Agnieszka Beatrix Cordelia Dagmar Esperanza Florentyna Gudrun Henrietta Ingrid Jolanta Leokadia
        Marisol Ninon Ottilie Philippa Rosalind Solveig Thomasina Ulrike Vesna Wilhelmina Yolanda""".split(),
}
NAME = re.compile(r"\b[A-Z][a-z]+\b")


def perturb_item(item: dict, kinds: list[str], rng: random.Random, suite: str) -> dict:
    item = dict(item)
    for kind in kinds:
        if kind == "reorder_sentences":
            item["question"] = reorder_sentences(item["question"], rng)
        elif kind == "renumber":
            item["question"], item["answer"] = renumber(item["question"], rng, suite)
        elif kind == "rename_entities":
            item.update(rename_entities(item, rng, suite))
    return item


def rename_entities(item: dict, rng: random.Random, suite: str) -> dict:
    """The item's question, answer and metadata with every known first name mapped to a new name of the same
    gender (one mapping per item, so 'Anna ... Anna' stays one person). An item with no known name is an error:
    the suite would silently be unperturbed."""
    gender = {n: g for g, names in KNOWN_NAMES.items() for n in names}
    found = list(dict.fromkeys(m.group() for m in NAME.finditer(item["question"]) if m.group() in gender))
    if not found:
        raise DataError(f"suite '{suite}': perturbation 'rename_entities' found no first name in "
                        f"{item['question'][:80]!r}")
    mapping = {}
    for g in ("male", "female"):
        mine = [n for n in found if gender[n] == g]
        pool = [n for n in NEW_NAMES[g] if n not in item["question"]]
        if len(mine) > len(pool):
            raise DataError(f"suite '{suite}': rename_entities has {len(pool)} new {g} names, the item needs "
                            f"{len(mine)}")
        mapping.update(zip(mine, rng.sample(pool, len(mine))))

    def swap(value):
        if isinstance(value, str):
            return NAME.sub(lambda m: mapping.get(m.group(), m.group()), value)
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return {"question": swap(item["question"]), "answer": swap(item["answer"]),
            **({"meta": swap(item["meta"])} if "meta" in item else {})}


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
