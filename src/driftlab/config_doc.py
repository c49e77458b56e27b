"""The config reference, generated from the pydantic models that validate a config (config.py) and the options of
every registered method, strategy and probe: `driftlab config schema` prints it, docs/config.md is it (a test checks
the page is current). Written here rather than taken from pydantic's JSON schema because that schema leaves out the
registered entries' flat keys (train.lora_r, probes.samples) and reads poorly as a page."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from driftlab.config import StrategyConfig, StudyConfig, WithOptions, _registry


def reference_rows(model: type[BaseModel] = StudyConfig, prefix: str = "") -> list[dict[str, str]]:
    """One row per key: {key, type, default, description}; nested blocks recursed (`variants[].train`)."""
    rows = []
    for name, field in model.model_fields.items():
        if name == "options" and _options_kind(model):
            continue  # its registered entries' flat keys, after the block's own keys
        key = f"{prefix}{name}"
        nested, is_list = _nested_model(field.annotation)
        default = "" if field.is_required() else _default(field)
        about = field.description or (nested.__doc__ or "").split("\n\n")[0] if nested else field.description
        rows.append({"key": key + ("[]" if is_list and nested else ""), "type": _type(field.annotation),
                     "default": default, "description": " ".join((about or "").split())})
        if nested is not None:
            rows += reference_rows(nested, f"{key}{'[]' if is_list else ''}.")
    if _options_kind(model):
        rows += _registered_options(_options_kind(model), prefix)
    return rows


def _options_kind(model: type[BaseModel]) -> str | None:
    """The registry whose entries' options a block takes as flat keys, if any."""
    if issubclass(model, WithOptions):
        return model.registry_kind
    return "strategy" if model is StrategyConfig else None


def _registered_options(kind: str, prefix: str) -> list[dict[str, str]]:
    """Flat keys that registered entries add to the block; a key several entries share (lora_r) is one row."""
    rows: dict[str, dict] = {}
    for entry in _registry(kind).entries().values():
        for name, field in entry.options.model_fields.items():
            row = rows.setdefault(name, {"key": f"{prefix}{name}", "type": _type(field.annotation),
                                         "default": _default(field), "entries": [],
                                         "description": " ".join((field.description or "").split())})
            row["entries"].append(entry.name)
    return [{**{k: v for k, v in r.items() if k != "entries"},
             "description": f"({kind} {', '.join(r['entries'])}) {r['description']}"}
            for r in rows.values()]


def _nested_model(annotation) -> tuple[type[BaseModel] | None, bool]:
    """The config block inside a field's type (X, X | None, list[X]) and whether it is a list of them."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args:
        inner, _ = _nested_model(args[0])
        return inner, True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in args:
            inner, is_list = _nested_model(arg)
            if inner is not None:
                return inner, is_list
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _type(annotation) -> str:
    if typing.get_origin(annotation) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return re.sub(r"\b(typing|pathlib|driftlab\.config)\.", "", text or str(annotation))


def _default(field) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()
    elif field.default is PydanticUndefined:
        return ""
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(block)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json", exclude_defaults=True) for v in value]
    if isinstance(value, Path):
        value = str(value)
    return repr(value)


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["# Config reference", "",
             "Every key of a study config (YAML), generated from the models that validate it (`driftlab config schema "
             "--markdown`; do not edit by hand). A variant's `train` block takes the keys of `train`. Registered "
             "methods, strategies and probes add flat keys, marked with their entry. `driftlab config show -c <file>` "
             "prints a config with every default filled in.", "",
             "| key | type | default | description |", "|---|---|---|---|"]
    for r in rows:
        cells = [r["key"], r["type"], r["default"], r["description"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
