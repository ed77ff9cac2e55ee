"""Horizontal bar charts as inline SVG, drawn on the server.

The review page must work without a CDN, a JS charting library or the internet, and print
well, so a chart is plain SVG markup: one row per group, stacked segments coloured by CSS
class (the stylesheet owns the palette), the value at the end of each bar, and a ``<title>``
/ ``<desc>`` so screen readers get the numbers too. Labels are escaped here; the result is
``Markup`` the templates insert as is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    """One stacked segment kind: its legend name and the CSS class that colours it."""

    name: str
    css_class: str


@dataclass(frozen=True)
class Bar:
    """One row: its label and one value per series (stacked left to right)."""

    label: str
    values: tuple[float, ...]

    @property
    def total(self) -> float:
        """Length of the whole bar."""
        return sum(self.values)


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _fit(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(
    bars: Sequence[Bar],
    series: Sequence[Series],
    *,
    title: str,
    max_value: float | None = None,
    value_format: Callable[[float], str] = _count,
    width: int = 480,
    label_width: int = 150,
    row_height: int = 20,
    max_rows: int = 12,
) -> Markup:
    """A horizontal stacked bar chart; rows beyond ``max_rows`` are summed into one
    "N more" row so a long tail cannot push the chart off the page."""
    if not series:
        raise ValueError("a chart needs at least one series")
    rows = list(bars)
    if len(rows) > max_rows:
        rest = rows[max_rows - 1 :]
        summed = tuple(sum(b.values[i] for b in rest) for i in range(len(series)))
        rows = [*rows[: max_rows - 1], Bar(f"{len(rest)} more", summed)]
    chart_id = f"chart{next(_ids)}"
    value_width = 56
    plot = max(width - label_width - value_width, 40)
    top = max((b.total for b in rows), default=0.0)
    scale_max = max_value if max_value is not None else top
    legend_height = 22 if len(series) > 1 else 0
    height = legend_height + max(len(rows), 1) * row_height + 4
    desc = "; ".join(
        f"{b.label}: "
        + ", ".join(f"{s.name} {value_format(v)}" for s, v in zip(series, b.values, strict=False))
        for b in rows
    )
    out = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc or "no data")}</desc>',
    ]
    if legend_height:
        lx = label_width
        for s in series:
            out.append(
                f'<rect class="{escape(s.css_class)}" x="{lx}" y="5" width="10" height="10"/>'
                f'<text class="chart-legend" x="{lx + 14}" y="14">{escape(s.name)}</text>'
            )
            lx += 24 + 7 * len(s.name)
    if not rows:
        out.append(
            f'<text class="chart-empty" x="{label_width}" y="{legend_height + 14}">no cases</text>'
        )
    for i, bar in enumerate(rows):
        y = legend_height + i * row_height
        mid = y + row_height / 2 + 4
        out.append(
            f'<g><title>{escape(bar.label)}</title><text class="chart-label" '
            f'x="{label_width - 6}" y="{mid:.1f}" text-anchor="end">'
            f"{escape(_fit(bar.label, 22))}</text></g>"
        )
        x = float(label_width)
        for s, value in zip(series, bar.values, strict=False):
            if value <= 0 or scale_max <= 0:
                continue
            w = plot * min(value, scale_max) / scale_max
            out.append(
                f'<rect class="{escape(s.css_class)}" x="{x:.1f}" y="{y + 3}" '
                f'width="{max(w, 1.0):.1f}" height="{row_height - 6}">'
                f"<title>{escape(bar.label)} · {escape(s.name)}: "
                f"{escape(value_format(value))}</title></rect>"
            )
            x += w
        out.append(
            f'<text class="chart-value" x="{x + 4:.1f}" y="{mid:.1f}">'
            f"{escape(value_format(bar.total))}</text>"
        )
    out.append("</svg>")
    # every label and title above went through escape(); the rest are numbers and constants
    return Markup("".join(out))  # noqa: S704
