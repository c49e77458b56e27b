"""Prompting strategies: how an item is asked. One module per strategy in this package, each registering a
`Strategy` in STRATEGIES; `eval.strategies` in the config names them. A strategy turns items into backend requests
and returns, per item, the final reply that gets extracted and scored, plus what the strategy itself measured.

To add a strategy: a new module here that calls `STRATEGIES.register(Strategy(...))` with its name, options (its
config keys, read as `strategy_cfg.options`), `run`, and the metrics it adds to a suite's metrics (declared, and
computed from the per-item records by `summarize`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from driftlab.eval.backend import Backend, Generation
from driftlab.registry import Entry, Registry


@dataclass
class StrategyOutput:
    generation: Generation  # the final reply (text, tokens, latency)
    extra: dict = field(default_factory=dict)  # what the strategy measured (votes, initial answer, ...)
    initial_text: str | None = None  # reflection: the answer before self-critique
    initial_finish: str | None = None  # ... and how that reply ended


@dataclass(frozen=True, kw_only=True)
class Strategy(Entry):
    # (strategy cfg, backend, items, suite cfg, token budget, few-shot exemplars) -> one StrategyOutput per item
    run: Callable[..., list[StrategyOutput]]
    rows_per_item: Callable = lambda cfg: 1  # generated sequences per item (what the progress bar counts)
    exemplars_needed: Callable = lambda cfg: 0  # train-split exemplars it needs per suite; fewer: the suite is skipped
    asks_for_format: bool = False  # its own instruction asks for an 'Answer:' line (the error taxonomy's format check)
    # (per-item records, suite cfg) -> {declared metric: value}: the strategy's own metrics of one suite
    summarize: Callable[..., dict] | None = None


STRATEGIES: Registry[Strategy] = Registry("strategy", __name__)


def run_strategy(strategy, backend: Backend, items: list[dict], suite, max_new_tokens: int,
                 shots: list[dict]) -> list[StrategyOutput]:
    """Run one configured strategy (a StrategyConfig) on items; `max_new_tokens` unless the strategy sets its own,
    and at least the suite's own budget."""
    entry = STRATEGIES.get(strategy.name)
    return entry.run(strategy, backend, items, suite, reply_budget(strategy, max_new_tokens, suite), shots)


def shared_prefix(items: list[dict]) -> str:
    """The suite's shared prompt text (data.build.shared_prefix), a cache hint for the backend; '' if none."""
    found = {it.get("shared_prefix", "") for it in items}
    return found.pop() if len(found) == 1 else ""


def reply_budget(strategy, max_new_tokens: int, suite) -> int:
    """The token budget of a strategy's replies on a suite: the strategy's own, else `max_new_tokens`, and at
    least the suite's (SuiteConfig.max_new_tokens)."""
    own = strategy.max_new_tokens if strategy is not None and strategy.max_new_tokens else max_new_tokens
    return max(own, getattr(suite, "max_new_tokens", None) or 0)


def zero_shot_config():
    """The plain strategy, for callers that ask an item as it is (the sweep, the shortcut probe)."""
    from driftlab.config import StrategyConfig

    return StrategyConfig(name="zero_shot")
