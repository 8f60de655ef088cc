"""The HTML report: one self-contained page (inline CSS and SVG) with the verdicts and a
reference-vs-current chart per feature."""

from __future__ import annotations

from html import escape
from typing import Any

from kubeloop_drift.outcome import FeatureOutcome
from kubeloop_drift.report_performance import performance_section
from kubeloop_drift.report_svg import histogram_svg
from kubeloop_drift.result import DriftResult

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600;color:#fff}
.drift{background:#c0392b}.ok{background:#27ae60}.skipped{background:#7f8c8d}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 12px;width:560px}
.card h3{font-size:15px;margin:0 0 6px}.meta{color:#555;font-size:12px;margin:4px 0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}dt{color:#555}
"""


def render_report(result: DriftResult) -> str:
    """The whole page as a string."""
    verdict = result.verdict
    badge = _badge("DATASET DRIFT" if verdict.dataset_drift else "NO DATASET DRIFT", verdict.dataset_drift)
    body = [
        "<h1>kubeloop drift report</h1>",
        f"<p>{badge} {verdict.drifted_features} of {verdict.tested_features} features drifted "
        f"(share {verdict.drift_share:.2f}; dataset drift at {verdict.drift_share_threshold:.2f})</p>",
        _facts(result),
        "<h2>Verdicts</h2>",
        _verdict_table(result.features),
    ]
    if result.not_checked:
        items = "".join(f"<li>{escape(n)}: {escape(r)}</li>" for n, r in result.not_checked.items())
        body.append(f"<h2>Not checked</h2><ul>{items}</ul>")
    if result.performance is not None:
        body.append(performance_section(result.performance))
    body.append("<h2>Distributions</h2>")
    body.append('<div class="cards">' + "".join(_card(outcome) for outcome in result.features) + "</div>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>kubeloop drift report</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _badge(text: str, drifted: bool, skipped: bool = False) -> str:
    css = "skipped" if skipped else ("drift" if drifted else "ok")
    return f'<span class="verdict {css}">{escape(text)}</span>'


def _facts(result: DriftResult) -> str:
    facts: list[tuple[str, Any]] = [
        ("reference", result.reference.get("uri")),
        ("reference rows", f"{result.reference.get('rows', 0):,}"),
        ("current", result.current.get("uri") or result.current.get("payload_log")),
        ("current rows", f"{result.current.get('rows', 0):,}"),
    ]
    window = result.current.get("window")
    if window:
        facts.append(("window", ", ".join(f"{k} {v}" for k, v in window.items())))
    facts.append(("created", result.created))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts if v is not None)
    return f"<dl>{rows}</dl>"


def _verdict_table(outcomes: list[FeatureOutcome]) -> str:
    head = (
        "<tr><th>feature</th><th>kind</th><th>test</th><th>score</th><th>threshold</th>"
        "<th>verdict</th><th>missing (ref / cur)</th></tr>"
    )
    rows = []
    for outcome in outcomes:
        rows.append(
            f"<tr><td>{escape(outcome.name)}</td><td>{outcome.kind}</td><td>{outcome.test}</td>"
            f'<td class="num">{_score(outcome)}</td><td class="num">{outcome.threshold:.4g}</td>'
            f"<td>{_verdict_badge(outcome)}</td>"
            f'<td class="num">{outcome.reference_missing_share:.1%} / '
            f"{outcome.current_missing_share:.1%}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _score(outcome: FeatureOutcome) -> str:
    return "-" if outcome.skipped else f"{outcome.score:.4g}"


def _verdict_badge(outcome: FeatureOutcome) -> str:
    if outcome.skipped:
        return _badge("skipped", False, skipped=True)
    return _badge("drift" if outcome.drifted else "ok", outcome.drifted)


def _card(outcome: FeatureOutcome) -> str:
    rule = "p &lt; threshold" if outcome.test in ("ks", "chi2") else "score &ge; threshold"
    lines = [
        f'<div class="card" id="feature-{escape(outcome.name)}">'
        f"<h3>{escape(outcome.name)} {_verdict_badge(outcome)}</h3>",
        f'<p class="meta">{outcome.kind}; {outcome.test} ({outcome.origin}) score {_score(outcome)}, '
        f"threshold {outcome.threshold:.4g}, drift when {rule}</p>",
    ]
    if outcome.skipped:
        lines.append(f'<p class="meta">skipped: {escape(outcome.skipped)}</p>')
    if outcome.histogram is not None:
        lines.append(histogram_svg(outcome.histogram, f"{outcome.name}: reference vs current"))
    stats = [
        f"rows ref {outcome.reference_count:,} / cur {outcome.current_count:,}",
        f"missing ref {outcome.reference_missing:,} / cur {outcome.current_missing:,}",
    ]
    if outcome.reference_mean is not None and outcome.current_mean is not None:
        stats.append(
            f"mean ref {outcome.reference_mean:.4g} / cur {outcome.current_mean:.4g}; "
            f"std ref {outcome.reference_std:.4g} / cur {outcome.current_std:.4g}"
        )
    if outcome.unseen_categories:
        stats.append(f"{outcome.unseen_categories} categories not in the reference")
    lines.append(f'<p class="meta">{escape("; ".join(stats))}</p></div>')
    return "".join(lines)
