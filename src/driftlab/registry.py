"""Registries: training methods, prompting strategies and probes, each found by name.

A method, a strategy or a probe lives in one module of its package (`train/methods/`, `eval/strategies/`,
`probes/`) and registers itself there with what it is: its name, its options (a pydantic model whose fields are
its config keys), what it produces (metrics, each with a direction and a one-line meaning) and the function that
runs it. Config validation, compare, the report and the CLI read the registry instead of keeping lists of names,
so adding one is one new module plus its tests (inspect_ai's `@solver` / `@scorer` registry is the model).

A registry imports every module of its package the first time it is asked for a name, so a module is registered
by being there.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    """The config keys one registered entry reads (none by default). Unknown keys are errors, as everywhere."""
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass(frozen=True)
class Metric:
    """One number an entry produces: its name, which way is better, and what it means in one line."""
    name: str
    better: Literal["higher", "lower", "neither"]
    meaning: str


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every registered thing declares. Stages extend it with the functions that run it."""
    name: str
    summary: str  # one line: what it is
    options: type[Options] = Options
    metrics: tuple[Metric, ...] = ()
    order: int = 100  # where it is listed (driftlab list, `driftlab probe`'s default, compare); then by name

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._entries: dict[str, E] = {}
        self._loaded = self._loading = False

    def register(self, entry: E) -> E:
        if entry.name in self._entries and self._entries[entry.name] is not entry:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> E:
        entries = self.entries()
        if name not in entries:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(entries)})")
        return entries[name]

    def names(self) -> list[str]:
        return list(self.entries())

    def entries(self) -> dict[str, E]:
        self._load()
        return dict(sorted(self._entries.items(), key=lambda kv: (kv[1].order, kv[0])))

    def _load(self) -> None:
        """Import every module of the package once (a module that is not an entry, such as probes/run.py, is
        imported too, so such modules keep their heavy imports inside functions). A failed import is raised, and
        the next call tries again."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            package = importlib.import_module(self.package)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")
            self._loaded = True
        finally:
            self._loading = False


def split_options(raw: dict, own_fields: set[str], entries: list[Entry]) -> tuple[dict, dict]:
    """Split a flat config mapping into (the config's own keys, {entry name: its validated options}). A key must
    belong to the config itself or to one of `entries`' options; anything else is an unknown key. Errors are
    pydantic errors that config.py turns into "unknown config key '<path>'" / "config key '<path>': ..."."""
    from pydantic import ValidationError
    from pydantic_core import PydanticCustomError

    own = {k: v for k, v in raw.items() if k in own_fields}
    rest = {k: v for k, v in raw.items() if k not in own_fields}
    options, claimed = {}, set()
    for entry in entries:  # several entries may read one key (lora, dora and qlora read lora_r)
        mine = {k: v for k, v in rest.items() if k in entry.options.model_fields}
        claimed |= set(mine)
        try:
            options[entry.name] = entry.options.model_validate(mine)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise PydanticCustomError("option_error", "{key}: {msg}",
                                      {"key": key, "msg": first["msg"].removeprefix("Value error, ")}) from None
    unknown = sorted(set(rest) - claimed)
    if unknown:
        raise PydanticCustomError("unknown_key", "unknown config key {key}", {"key": unknown[0]})
    return own, options
