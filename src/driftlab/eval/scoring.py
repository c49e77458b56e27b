"""Scorers: is an extracted answer the gold one, and why."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from driftlab.eval.extract import normalize_number


def score(extracted: str | None, gold: str, kind: str) -> tuple[bool, str]:
    if extracted is None:
        return False, "no answer extracted"
    if kind == "numeric":
        a, g = _decimal(extracted), _decimal(normalize_number(gold) or "")
        if a is None or g is None:
            return False, f"not comparable as numbers: {extracted!r} vs {gold!r}"
        return (a == g), ("numeric match" if a == g else f"numeric mismatch: {extracted} != {gold}")
    ok = normalize_text(extracted) == normalize_text(gold)  # 'exact' and 'strict' differ only in extraction
    return ok, ("exact match" if ok else f"mismatch: {extracted!r} != {gold!r}")


def normalize_text(text: str) -> str:
    """Case, surrounding whitespace, quotes and trailing punctuation do not matter: "'Apple'." == "apple"."""
    text = re.sub(r"\s+", " ", text.casefold())
    return text.strip(" \"'`.!?,;:*")


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return None
