"""Inline SVG charts for the report: reference and current shares side by side, per bin or category.

Pure string building: no plotting library, no images, nothing fetched; the HTML stays
self-contained and renders anywhere.
"""

from __future__ import annotations

import itertools
from html import escape

from kubeloop_drift.outcome import Histogram

WIDTH, HEIGHT = 540, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 24, 58
REFERENCE_COLOUR = "#4e79a7"
CURRENT_COLOUR = "#f28e2b"


def histogram_svg(histogram: Histogram, title: str) -> str:
    """Grouped bars: for each bin (or category) the reference share, then the current share."""
    labels = histogram.labels if histogram.labels is not None else bin_labels(histogram.edges or [])
    axis_labels = histogram.labels if histogram.labels is not None else bin_starts(histogram.edges or [])
    bins = len(histogram.reference_shares)
    top_share = max([*histogram.reference_shares, *histogram.current_shares, 1e-9])
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(bins, 1)
    bar = max(slot * 0.4, 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_height}" '
        'stroke="#999"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" font-size="10">{top_share:.0%}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_height}" text-anchor="end" font-size="10">0%</text>',
    ]
    for index, (reference, current) in enumerate(
        zip(histogram.reference_shares, histogram.current_shares, strict=True)
    ):
        x = LEFT + index * slot + (slot - 2 * bar) / 2
        for offset, share, colour, side in (
            (0.0, reference, REFERENCE_COLOUR, "reference"),
            (bar, current, CURRENT_COLOUR, "current"),
        ):
            height = plot_height * share / top_share
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{TOP + plot_height - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(labels[index])}: '
                f"{side} {share:.2%}</title></rect>"
            )
    step = max(1, bins // 8)
    for index in range(0, bins, step):
        x = LEFT + (index + 0.5) * slot
        label = escape(_shorten(axis_labels[index]))
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_height + 12}" font-size="9" text-anchor="end" '
            f'transform="rotate(-35 {x:.1f} {TOP + plot_height + 12})">{label}</text>'
        )
    parts.append(_legend())
    parts.append("</svg>")
    return "".join(parts)


def bin_labels(edges: list[float]) -> list[str]:
    """Names of the bins (-inf, e1), [e1, e2), ..., [ek, inf)."""
    if not edges:
        return ["all values"]
    labels = [f"< {edges[0]:.4g}"]
    labels += [f"{low:.4g} to {high:.4g}" for low, high in itertools.pairwise(edges)]
    labels.append(f">= {edges[-1]:.4g}")
    return labels


def bin_starts(edges: list[float]) -> list[str]:
    """Short axis labels: where each bin starts."""
    return [f"< {edges[0]:.3g}" if edges else "all values"] + [f"{edge:.3g}" for edge in edges]


def _shorten(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _legend() -> str:
    y = 14
    return (
        f'<rect x="{LEFT}" y="{y - 8}" width="10" height="10" fill="{REFERENCE_COLOUR}"/>'
        f'<text x="{LEFT + 14}" y="{y + 1}" font-size="10">reference</text>'
        f'<rect x="{LEFT + 80}" y="{y - 8}" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
        f'<text x="{LEFT + 94}" y="{y + 1}" font-size="10">current</text>'
    )
