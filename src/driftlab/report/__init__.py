"""Stage 6 — report: report.md and a self-contained report.html."""

from driftlab.report.html import render_html
from driftlab.report.markdown import render_markdown

__all__ = ["render_html", "render_markdown"]
