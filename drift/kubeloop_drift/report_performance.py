"""The performance section of the HTML report: coverage, realized (with interval bars) and estimated
metrics against their thresholds, per-group metrics, fairness."""

from __future__ import annotations

from html import escape

from kubeloop.api.performance import MetricValue, PerformanceResult

BAR_WIDTH = 240


def performance_section(performance: PerformanceResult) -> str:
    """``<h2>Performance</h2>`` and its tables."""
    if performance.error is not None:
        return f'<h2>Performance</h2><p class="meta">not measured: {escape(performance.error)}</p>'
    coverage = performance.label_coverage
    state = "DEGRADED" if performance.degraded else "WITHIN THRESHOLDS"
    css = "drift" if performance.degraded else "ok"
    parts = [
        "<h2>Performance</h2>",
        f'<p><span class="verdict {css}">{state}</span> {performance.labelled:,} labelled of '
        f"{performance.matured:,} matured predictions (label coverage "
        f"{'-' if coverage is None else f'{coverage:.1%}'}; {performance.early_labels:,} early labels; "
        f"{performance.predictions:,} predictions in the window)</p>",
    ]
    if performance.message:
        parts.append(f'<p class="meta">{escape(performance.message)}</p>')
    head = (
        "<tr><th>metric</th><th>source</th><th>value</th><th>95% interval</th><th></th>"
        "<th>threshold</th></tr>"
    )
    rows = "".join(_metric_row(m) for m in performance.metrics)
    parts.append(f"<table>{head}{rows}</table>")
    if performance.groups:
        names = sorted({name for g in performance.groups for name in g.metrics})
        head = "<tr><th>attribute</th><th>group</th><th>rows</th>" + "".join(
            f"<th>{escape(n)}</th>" for n in names
        )
        body = "".join(
            f"<tr><td>{escape(g.attribute)}</td><td>{escape(g.group)}</td><td class=num>{g.rows:,}"
            f"{'' if g.included else ' (below minimum, excluded)'}</td>"
            + "".join(f'<td class="num">{_number(g.metrics.get(n))}</td>' for n in names)
            + "</tr>"
            for g in performance.groups
        )
        parts.append(f"<h2>Per group</h2><table>{head}</tr>{body}</table>")
    if performance.fairness:
        body = "".join(
            f"<tr><td>{escape(f.attribute)}</td><td>{f.metric}</td><td class=num>{_number(f.value)}</td>"
            f"<td class=num>{_number(f.threshold)}</td><td>{'BREACHED' if f.breached else 'ok'}</td></tr>"
            for f in performance.fairness
        )
        head = "<tr><th>attribute</th><th>metric</th><th>value</th><th>max</th><th>verdict</th></tr>"
        parts.append(f"<h2>Fairness</h2><table>{head}{body}</table>")
    return "\n".join(parts)


def _metric_row(metric: MetricValue) -> str:
    interval = (
        f"{metric.lower:.4g} - {metric.upper:.4g}"
        if metric.lower is not None and metric.upper is not None
        else "-"
    )
    verdict = " BREACHED" if metric.breached else ""
    return (
        f"<tr><td>{metric.metric}</td><td>{metric.source}</td><td class=num>{_number(metric.value)}</td>"
        f"<td class=num>{interval}</td><td>{_bar(metric)}</td>"
        f"<td class=num>{_number(metric.threshold)}{verdict}</td></tr>"
    )


def _bar(metric: MetricValue) -> str:
    """The value (dot), its interval (line) and the threshold (red tick) on a 0..1 scale."""
    if metric.value is None or metric.metric in ("mae", "rmse"):
        return ""

    def x(value: float) -> float:
        return 4 + max(0.0, min(1.0, value)) * (BAR_WIDTH - 8)

    shapes = [f'<line x1="4" y1="8" x2="{BAR_WIDTH - 4}" y2="8" stroke="#ddd"/>']
    if metric.lower is not None and metric.upper is not None:
        shapes.append(
            f'<line x1="{x(metric.lower):.1f}" y1="8" x2="{x(metric.upper):.1f}" y2="8" stroke="#2c7fb8" '
            'stroke-width="3"/>'
        )
    if metric.threshold is not None:
        tick = x(metric.threshold)
        shapes.append(f'<line x1="{tick:.1f}" y1="1" x2="{tick:.1f}" y2="15" stroke="#c0392b"/>')
    shapes.append(f'<circle cx="{x(metric.value):.1f}" cy="8" r="4" fill="#222"/>')
    return f'<svg width="{BAR_WIDTH}" height="16" role="img">{"".join(shapes)}</svg>'


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
