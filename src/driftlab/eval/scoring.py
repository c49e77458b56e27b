"""Scorers: is an extracted answer the gold one, and why."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from driftlab.eval.extract import normalize_number


def score(extracted: str | None, gold: str, kind: str, choices: list[str] | None = None) -> tuple[bool, str]:
    if extracted is None:
        return False, "no answer extracted"
    if kind == "math":
        return _math_equal(extracted, gold)
    if kind == "choice":
        picked = pick_choice(extracted, choices or [])
        if picked is None:
            return False, f"{extracted!r} names none of the choices"
        ok = picked == gold
        return ok, (f"chose {picked!r}" + ("" if ok else f", gold {gold!r}"))
    if kind == "numeric":
        a, g = _decimal(extracted), _decimal(normalize_number(gold) or "")
        if a is None or g is None:
            return False, f"not comparable as numbers: {extracted!r} vs {gold!r}"
        return (a == g), ("numeric match" if a == g else f"numeric mismatch: {extracted} != {gold}")
    ok = normalize_text(extracted) == normalize_text(gold)  # 'exact' and 'strict' differ only in extraction
    return ok, ("exact match" if ok else f"mismatch: {extracted!r} != {gold!r}")


def pick_choice(extracted: str, choices: list[str]) -> str | None:
    """'B', '(b)', 'B) Paris', 'Paris' -> the choice they name."""
    text = extracted.strip()
    by_text = {normalize_text(c): c for c in choices}
    if normalize_text(text) in by_text:
        return by_text[normalize_text(text)]
    match = re.fullmatch(r"\(?([A-Za-z])\)?(?:[.):]\s*(.*))?", text)
    if match:
        k = ord(match.group(1).upper()) - 65
        if 0 <= k < len(choices) and (not match.group(2) or normalize_text(match.group(2)) == normalize_text(choices[k])):
            return choices[k]
    return None


def _math_equal(extracted: str, gold: str) -> tuple[bool, str]:
    # math-verify parses LaTeX and plain expressions and compares them symbolically (1/2 == 0.5 == \frac{1}{2}).
    from math_verify import parse, verify

    try:
        ok = bool(verify(parse(gold), parse(extracted)))
    except Exception as err:  # math-verify raises on unparseable input; that is a wrong answer, not a crash
        return False, f"math-verify could not compare {extracted!r} with {gold!r}: {type(err).__name__}"
    return ok, ("math-verify: equivalent" if ok else f"math-verify: {extracted!r} is not {gold!r}")


def normalize_text(text: str) -> str:
    """Case, surrounding whitespace, quotes and trailing punctuation do not matter: "'Apple'." == "apple"."""
    text = re.sub(r"\s+", " ", text.casefold())
    return text.strip(" \"'`.!?,;:*")


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return None
