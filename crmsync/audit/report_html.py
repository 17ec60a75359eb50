"""The audit as ONE self-contained HTML file: inline CSS and inline SVG charts drawn here, in Python.

No JavaScript, no fonts, images or styles from the network: the file opens offline in any browser
and can be mailed or archived as it is. Charts: the stage funnel, time in stage (median bar, p90
whisker), lead conversion over time (monthly leads, converted and rate), open pipeline value by stage
(total and probability-weighted, one panel per currency), and the top problems (offending records per
fired check) followed by those records.

Every chart is an ``<svg class="chart" data-chart="…">`` whose drawn marks carry ``class="mark"``
(tests and the headless-browser check look for them).
"""

from __future__ import annotations

from html import escape
from typing import Any

from crmsync import __version__
from crmsync.audit.report import AuditReport

SEVERITY_COLOR = {"error": "#c8372d", "warning": "#d9901a", "info": "#2f7bbf"}
BLUE, LIGHT, GREY, INK, MUTED = "#2f6fb0", "#a8c5e6", "#c9ced6", "#1f2933", "#616e7c"
W = 560  # viewBox width of every chart

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;
color:#1f2933;background:#f4f6f8}main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:15px;margin:0 0 8px}
.meta{color:#616e7c;margin-bottom:16px}.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.tile{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:22px}.tile span{color:#616e7c;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}.card{background:#fff;border-radius:8px;padding:16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}.card.wide{grid-column:1/-1}svg.chart{width:100%;height:auto;display:block}
svg text{font-family:inherit}table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
.sev.error{background:#c8372d}.sev.warning{background:#d9901a}.sev.info{background:#2f7bbf}
.sev.ok{background:#3f9142}.sev.skipped{background:#9aa5b1}details{margin:8px 0;background:#fff;border-radius:8px;
padding:8px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}summary{cursor:pointer;font-weight:600}
.note{color:#616e7c;font-size:12px}footer{color:#616e7c;font-size:12px;margin-top:24px}
@media print{.grid{grid-template-columns:1fr}}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.{digits}f}M"
    if abs(value) >= 1000:
        return f"{value / 1000:,.{digits}f}k"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _svg(name: str, height: float, body: list[str], label: str) -> str:
    return (f'<svg class="chart" data-chart="{_e(name)}" '
            f'viewBox="0 0 {W} {height:.0f}" role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: Any, size: int = 12, anchor: str = "start", color: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
            f'font-weight="{weight}">{_e(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, color: str, title: str = "", cls: str = "mark") -> str:
    tip = f"<title>{_e(title)}</title>" if title else ""
    return (f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
            f'fill="{color}" rx="2">{tip}</rect>')


def _empty(name: str, message: str) -> str:
    return _svg(name, 60, [f'<rect class="frame" x="0.5" y="0.5" width="{W - 1}" height="59" fill="none" '
                           f'stroke="{GREY}"/>', _text(W / 2, 35, message, 13, "middle", MUTED)], message)


def _truncate(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- charts -------------------------------------------------------------------------------------


def funnel_chart(funnel: dict[str, Any]) -> str:
    steps = funnel["stages"]
    if not steps or not steps[0]["reached"]:
        return _empty("funnel", "no deals with a ranked stage in this period")
    rows = [*steps, {"name": "Won", "reached": funnel["won"], "conversion_to_next": None, "won": True}]
    top = max(r["reached"] for r in rows) or 1
    bar_h, gap, left, right = 26, 8, 130, 120
    span = W - left - right
    body = []
    for i, r in enumerate(rows):
        y = 8 + i * (bar_h + gap)
        w = span * r["reached"] / top
        x = left + (span - w) / 2
        color = "#3f9142" if r.get("won") else BLUE
        body.append(_rect(x, y, w, bar_h, color, f"{r['name']}: {r['reached']:,} deals"))
        body.append(_text(left - 8, y + bar_h / 2 + 4, _truncate(r["name"], 18), 12, "end"))
        body.append(_text(left + span + 8, y + bar_h / 2 + 4, f"{r['reached']:,}", 12, weight="bold"))
        if r["conversion_to_next"] is not None:
            body.append(_text(left + span + 58, y + bar_h / 2 + 4, f"→ {_pct(r['conversion_to_next'])}", 11,
                              color=MUTED))
    height = 8 + len(rows) * (bar_h + gap)
    return _svg("funnel", height, body, f"funnel of {funnel['pipeline_name'] or funnel['pipeline_id']}")


def time_in_stage_chart(rows: list[dict[str, Any]]) -> str:
    rows = rows[:14]
    if not rows:
        return _empty("time_in_stage", "no completed stage spans (run crmsync reconcile)")
    top = max(max(r["p90_days"], r["median_days"], 0) for r in rows) or 1
    bar_h, gap, left, right = 20, 8, 130, 60
    span = W - left - right
    body = []
    for i, r in enumerate(rows):
        y = 8 + i * (bar_h + gap)
        med, p90 = max(r["median_days"], 0), max(r["p90_days"], 0)
        body.append(_rect(left, y, span * med / top, bar_h, BLUE,
                          f"{r['name']}: median {r['median_days']} d, p90 {r['p90_days']} d, {r['spans']} spans"))
        x90 = left + span * p90 / top
        body.append(f'<line class="mark" x1="{left + span * med / top:.1f}" y1="{y + bar_h / 2:.1f}" '
                    f'x2="{x90:.1f}" y2="{y + bar_h / 2:.1f}" stroke="{INK}" stroke-width="1.5"/>')
        body.append(f'<line class="mark" x1="{x90:.1f}" y1="{y + 3:.1f}" x2="{x90:.1f}" y2="{y + bar_h - 3:.1f}" '
                    f'stroke="{INK}" stroke-width="1.5"/>')
        body.append(_text(left - 8, y + bar_h / 2 + 4, _truncate(r["name"], 18), 12, "end"))
        body.append(_text(min(x90 + 6, W - right + 4), y + bar_h / 2 + 4, f"{r['median_days']:g} d", 11))
    height = 8 + len(rows) * (bar_h + gap) + 16
    body.append(_text(left, height - 4, "bar: median days · whisker: p90", 11, color=MUTED))
    return _svg("time_in_stage", height, body, "time in stage, median and p90 days")


def conversion_chart(months: list[dict[str, Any]]) -> str:
    months = [m for m in months if m["key"] != "(unknown)"][-24:]
    if not months:
        return _empty("conversion", "no leads in this period")
    height, top_pad, bottom, left, right = 240, 14, 40, 44, 44
    plot_h, plot_w = height - top_pad - bottom, W - left - right
    peak = max(m["leads"] for m in months) or 1
    step = plot_w / len(months)
    bw = max(min(step * 0.35, 22), 2)
    body = [f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{W - right}" y2="{top_pad + plot_h}" stroke="{GREY}"/>',
            _text(left - 6, top_pad + 8, f"{peak:,}", 10, "end", MUTED), _text(left - 6, top_pad + plot_h, "0", 10,
                                                                                "end", MUTED),
            _text(W - right + 6, top_pad + 8, "100%", 10, color="#3f9142"),
            _text(W - right + 6, top_pad + plot_h, "0%", 10, color="#3f9142")]
    points = []
    every = max(1, -(-len(months) // 8))  # at most ~8 month labels
    for i, m in enumerate(months):
        cx = left + step * (i + 0.5)
        h_leads = plot_h * m["leads"] / peak
        h_conv = plot_h * m["converted"] / peak
        base = top_pad + plot_h
        body.append(_rect(cx - bw, base - h_leads, bw, h_leads, GREY, f"{m['key']}: {m['leads']:,} leads"))
        body.append(_rect(cx, base - h_conv, bw, h_conv, BLUE, f"{m['key']}: {m['converted']:,} converted"))
        if m["rate"] is not None:
            points.append((cx, base - plot_h * m["rate"], m))
        if i % every == 0:
            body.append(_text(cx, base + 14, m["key"][2:], 10, "middle", MUTED))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        body.append(f'<polyline class="mark" points="{path}" fill="none" stroke="#3f9142" stroke-width="2"/>')
        for x, y, m in points:
            body.append(f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#3f9142">'
                        f"<title>{_e(m['key'])}: {_pct(m['rate'])}</title></circle>")
    lx = left
    for color, label in ((GREY, "leads"), (BLUE, "converted"), ("#3f9142", "conversion rate")):
        body.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>')
        body.append(_text(lx + 14, height - 5, label, 11))
        lx += 24 + 7 * len(label)
    return _svg("conversion", height, body, "lead to deal conversion by month")


def value_chart(rows: list[dict[str, Any]]) -> list[str]:
    """One panel per currency (the three with most open value)."""
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_currency.setdefault(r["currency"], []).append(r)
    ranked = sorted(by_currency.items(), key=lambda kv: -sum(r["value"] for r in kv[1]))[:3]
    if not ranked:
        return [_empty("pipeline_value", "no open deals")]
    out = []
    for currency, items in ranked:
        merged: dict[str, dict[str, Any]] = {}
        for r in items:  # several sources/pipelines with one stage name: one bar
            key = r["name"] or "(no stage)"
            m = merged.setdefault(key, {"name": key, "rank": r["rank"], "value": 0.0, "weighted": 0.0, "deals": 0})
            m["value"] += r["value"]
            m["weighted"] += r["weighted"]
            m["deals"] += r["deals"]
        bars = list(merged.values())[:14]
        top = max(b["value"] for b in bars) or 1
        bar_h, gap, left, right = 20, 8, 130, 110
        span = W - left - right
        body = [_text(0, 14, f"{currency} — total {_num(sum(b['value'] for b in bars))}, weighted "
                             f"{_num(sum(b['weighted'] for b in bars))}", 13, weight="bold")]
        for i, b in enumerate(bars):
            y = 26 + i * (bar_h + gap)
            body.append(_rect(left, y, span * b["value"] / top, bar_h, LIGHT,
                              f"{b['name']}: {b['value']:,.2f} {currency} in {b['deals']} deals"))
            body.append(_rect(left, y + 4, span * b["weighted"] / top, bar_h - 8, BLUE,
                              f"{b['name']}: weighted {b['weighted']:,.2f} {currency}"))
            body.append(_text(left - 8, y + bar_h / 2 + 4, _truncate(b["name"], 18), 12, "end"))
            body.append(_text(left + span * b["value"] / top + 6, y + bar_h / 2 + 4,
                              f"{_num(b['value'])} ({b['deals']})", 11))
        height = 26 + len(bars) * (bar_h + gap) + 18
        body.append(_text(left, height - 4, "light: total value (deals) · dark: weighted by probability", 11,
                          color=MUTED))
        out.append(_svg("pipeline_value", height, body, f"open pipeline value by stage in {currency}"))
    return out


def problems_chart(report: AuditReport) -> str:
    fired = sorted((c for c in report.checks if c.fired), key=lambda c: (-c.severity.rank, -c.count, c.id))[:12]
    if not fired:
        return _empty("problems", "no check fired")
    top = max(c.count for c in fired) or 1
    bar_h, gap, left, right = 20, 8, 210, 60
    span = W - left - right
    body = []
    for i, c in enumerate(fired):
        y = 8 + i * (bar_h + gap)
        body.append(_rect(left, y, span * c.count / top, bar_h, SEVERITY_COLOR[c.severity.value],
                          f"{c.id}: {c.count:,} ({c.severity.value})"))
        body.append(_text(left - 8, y + bar_h / 2 + 4, _truncate(c.id, 30), 12, "end"))
        body.append(_text(left + span * c.count / top + 6, y + bar_h / 2 + 4, f"{c.count:,}", 12, weight="bold"))
    return _svg("problems", 8 + len(fired) * (bar_h + gap), body, "offending records per fired check")


# -- page ---------------------------------------------------------------------------------------


def to_html(report: AuditReport, records: int = 10) -> str:
    m = report.metrics
    f = report.filters
    period = f"{f.since or '…'} → {f.until or '…'}" if f.since or f.until else "all time"
    counts = report.counts()
    lc, wr, cyc = m.get("lead_conversion"), m["win_rate"], m["sales_cycle"]
    tiles = [
        (f"{counts['error']} / {counts['warning']} / {counts['info']}", "checks fired: error / warning / info"),
        (_pct(lc["rate"]) if lc else "—", f"lead → deal ({lc['converted']:,} of {lc['leads']:,})" if lc else
         "lead → deal (no reconcile)"),
        (_pct(wr["rate"]), f"win rate ({wr['won']:,} won, {wr['lost']:,} lost)"),
        (f"{cyc['median_days']:g} d" if cyc["median_days"] is not None else "—",
         f"median sales cycle ({cyc['deals']:,} won)"),
    ]
    b = m.get("bottleneck")
    if b:
        tiles.append((_e(b["name"]), f"bottleneck: {b['median_days']:g} d median × {_pct(b['drop_off'])} drop-off"))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>crmsync audit — {_e(f.as_of_iso[:10])}</title><style>{CSS}</style></head><body><main>",
        "<h1>Pipeline audit</h1>",
        f'<div class="meta">{_e(report.warehouse)} · as of {_e(f.as_of_iso)} · period {_e(period)}'
        f'{" · pipeline " + _e(f.pipeline) if f.pipeline else ""} · generated {_e(report.generated_at)} '
        f"in {report.seconds:.2f}s</div>",
        '<div class="tiles">' + "".join(f'<div class="tile"><b>{v}</b><span>{_e(t)}</span></div>' for v, t in tiles)
        + "</div>",
        '<div class="grid">',
    ]
    parts.append(f'<div class="card"><h3>Top problems</h3>{problems_chart(report)}'
                 '<div class="note">offending records per fired check, by severity; records below</div></div>')
    funnels = m["funnel"][:3] or [{"stages": [], "won": 0, "pipeline_id": None, "pipeline_name": None}]
    for fn in funnels:
        name = fn["pipeline_name"] or fn["pipeline_id"] or ""
        parts.append(f'<div class="card"><h3>Funnel — {_e(name)}</h3>{funnel_chart(fn)}'
                     f'<div class="note">deals added in the period that reached each stage; → share that went on'
                     f"</div></div>")
    parts.append(f'<div class="card"><h3>Time in stage</h3>{time_in_stage_chart(m["time_in_stage"])}</div>')
    months = lc["by_month"] if lc else []
    parts.append(f'<div class="card"><h3>Lead conversion over time</h3>{conversion_chart(months)}</div>')
    for svg in value_chart(m["pipeline_value"]):
        parts.append(f'<div class="card"><h3>Open pipeline value by stage</h3>{svg}</div>')
    parts.append("</div>")

    parts.append("<h2>Checks</h2><table><tr><th>severity</th><th>check</th><th>count</th><th>threshold</th>"
                 "<th>status</th></tr>")
    for c in report.checks:
        state = c.severity.value if c.fired else c.status
        thresholds = ", ".join(f"{k} = {v}" for k, v in c.thresholds.items())
        parts.append(f'<tr><td><span class="sev {c.severity.value}">{c.severity.value}</span></td>'
                     f"<td><b>{_e(c.id)}</b> — {_e(c.title)}</td><td class=\"n\">{c.count:,}</td>"
                     f'<td>{_e(thresholds)}</td><td><span class="sev {state}">{_e(c.note or state)}</span></td></tr>')
    parts.append("</table>")

    fired = sorted((c for c in report.checks if c.fired), key=lambda c: (-c.severity.rank, -c.count, c.id))
    if fired:
        parts.append("<h2>Top problems and their records</h2>")
    for i, c in enumerate(fired):
        shown = c.records[:records]
        more = f" — first {len(shown)} of {c.count:,}" if c.count > len(shown) else ""
        parts.append(f'<details{" open" if i < 3 else ""}><summary><span class="sev {c.severity.value}">'
                     f"{c.severity.value}</span> {_e(c.title)} ({c.count:,}){_e(more)}</summary>"
                     f'<p class="note">{_e(c.description)}</p><table><tr><th>record</th><th>label</th>'
                     "<th>detail</th></tr>")
        for r in shown:
            parts.append(f"<tr><td>{_e(r['entity'])} {_e(r['source'])}/{_e(r['id'])}</td><td>{_e(r['label'])}</td>"
                         f"<td>{_e(r['detail'])}</td></tr>")
        parts.append("</table></details>")

    parts.append("<h2>Metrics</h2>" + _metric_tables(m))
    parts.append(f"<footer>crmsync {__version__} · checks and metrics are defined in docs/audit.md · "
                 "this file is self-contained (no scripts, no network)</footer></main></body></html>")
    return "\n".join(parts)


def _table(head: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{_e(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


def _metric_tables(m: dict[str, Any]) -> str:
    out = ['<div class="grid">']
    out.append('<div class="card"><h3>Deal size and velocity</h3>' + _table(
        ["currency", "won", "average", "open", "velocity / day"],
        [[v["currency"], next((d["won"] for d in m["deal_size"] if d["currency"] == v["currency"]), 0),
          _num(v["average_deal_size"], 2), v["open_deals"], _num(v["per_day"], 2)] for v in m["velocity"]]
        + [[d["currency"], d["won"], _num(d["average"], 2), 0, "—"] for d in m["deal_size"]
           if d["currency"] not in {v["currency"] for v in m["velocity"]}],
        {1, 2, 3, 4}) + '<p class="note">velocity = open deals × win rate × average won deal ÷ mean cycle days</p>'
        "</div>")
    out.append('<div class="card"><h3>Time in stage (days)</h3>' + _table(
        ["stage", "spans", "mean", "median", "p90"],
        [[r["name"], r["spans"], r["mean_days"], r["median_days"], r["p90_days"]] for r in m["time_in_stage"]],
        {1, 2, 3, 4}) + "</div>")
    lc = m.get("lead_conversion")
    if lc:
        for dim in ("source_name", "channel", "owner"):
            out.append(f'<div class="card"><h3>Lead conversion by {dim.replace("_", " ")}</h3>' + _table(
                [dim, "leads", "converted", "rate"],
                [[r["key"], r["leads"], r["converted"], _pct(r["rate"])] for r in lc[f"by_{dim}"][:20]],
                {1, 2, 3}) + "</div>")
    out.append("</div>")
    return "".join(out)
