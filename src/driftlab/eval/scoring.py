"""Scorers: is an extracted answer the gold one, and why; and which extracted answers mean the same (the keys a
majority vote and the faithfulness probes compare)."""

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


def canonical_answers(answers: list[str | None], scorer: str, choices: list[str] | None = None) -> list[str | None]:
    """One key per meaning: 'B', 'B) Paris' and 'Paris' are one choice; 1/2 and 0.5 are one number under 'math'."""
    if scorer == "choice":
        return [(pick_choice(a, choices or []) or normalize_text(a)) if a is not None else None for a in answers]
    if scorer != "math":
        return [normalize_text(a) if a is not None else None for a in answers]
    from math_verify import parse, verify

    reps: list[str] = []
    keys = []
    for a in answers:
        if a is None:
            keys.append(None)
            continue
        match = None
        for r in reps:
            try:
                if verify(parse(r), parse(a)):
                    match = r
                    break
            except Exception:  # unparseable: falls back to its own text below
                continue
        if match is None:
            reps.append(a)
            match = a
        keys.append(normalize_text(match))
    return keys


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
