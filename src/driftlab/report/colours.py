"""One colour per model across every plot and table of a report: the base first, then the variants in study order
(Tableau 10)."""

from __future__ import annotations

COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
          "#eeca3b"]
BASE = COLORS[0]
# Plots of one model's suites (over training) colour by suite: another palette (ColorBrewer Dark2), so no colour
# there reads as a model.
SUITE_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def variant_colour(variants: list[str], name: str) -> str:
    """The base's colour for "base" (or a name not in `variants`), else the variant's own, cycling past nine
    variants through the colours that are not the base's."""
    if name not in variants:
        return BASE
    return COLORS[1 + variants.index(name) % (len(COLORS) - 1)]
