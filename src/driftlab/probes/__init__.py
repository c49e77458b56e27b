"""Stage 4 — probes: what accuracy hides. One module per probe in this package, each registering a `Probe` in
PROBES; `probes.run` in the config names them, compare pairs their declared metrics item by item, the report shows
each metric with its direction and meaning.

To add a probe: a new module here that calls `PROBES.register(Probe(...))` with its name, options (config keys
under `probes:`, read as `opts`), its per-item metrics and `run(ctx, opts) -> (rows, summary)`; every row has an
`id` and one value per declared metric (None where the item cannot be measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from driftlab.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Probe(Entry):
    run: Callable[..., tuple[list[dict], dict]]  # (ProbeContext, options) -> (per-item rows, summary)


@dataclass
class ProbeContext:
    """What a probe gets: the model under test and its open backend (behind the results store, so replies and
    samples the eval already produced come back without recomputation: `covering`), and the items of the probe
    suite (`items`, the first probes.limit of `suite_items`)."""
    model: Any  # models.ModelUnderTest
    backend: Any  # eval.store.CachedBackend from eval.open.open_backend
    eval_cfg: Any  # config.EvalConfig
    suite: Any  # config.SuiteConfig
    items: list[dict]
    shots: list[dict]
    suite_items: list[dict] = field(default_factory=list)

    def strategy(self, name: str):
        """The study's own settings for a strategy (the store then hands back the eval's replies), or None."""
        return next((s for s in self.eval_cfg.strategies if s.name == name), None)

    def cot(self):
        from driftlab.config import StrategyConfig

        return self.strategy("cot") or StrategyConfig(name="cot", max_new_tokens=96)

    def covering(self, strategy) -> list[dict]:
        """The items to ask a strategy's request about so that the store hands back the eval's replies: the eval
        asked about the suite's first `strategy.limit` items in one request, and a stored result is keyed by the
        request's batches (eval.store), so a probe asks the same and keeps the replies of its first len(items).
        Its own items where the eval did not run the strategy on this suite, or on fewer items."""
        if (strategy is None or strategy not in self.eval_cfg.strategies
                or (strategy.suites is not None and self.suite.name not in strategy.suites)):
            return self.items
        asked = self.suite_items[: strategy.limit]
        return asked if asked[: len(self.items)] == self.items else self.items


PROBES: Registry[Probe] = Registry("probe", __name__)
