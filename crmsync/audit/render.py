"""The audit as rich tables for the terminal (the CLI prints what :func:`renderables` returns)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from crmsync.audit.report import AuditReport

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green", "skipped": "dim"}


def _n(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def renderables(report: AuditReport, records: int = 5) -> list[RenderableType]:
    """Checks summary, offending records of fired checks (first ``records`` each), then metrics."""
    f = report.filters
    period = f"{f.since or '…'} → {f.until or '…'}" if f.since or f.until else "all time"
    head = Text.assemble(
        ("crmsync audit ", "bold"), f"{report.warehouse} · as of {f.as_of_iso} · period {period}",
        f" · pipeline {f.pipeline}" if f.pipeline else "", f" · {report.seconds:.2f}s",
    )
    out: list[RenderableType] = [head]

    checks = Table(title="checks", title_justify="left")
    for col, just in (("severity", "left"), ("check", "left"), ("count", "right"), ("threshold", "left"),
                      ("status", "left")):
        checks.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in report.checks:
        state = c.severity.value if c.fired else c.status
        thresholds = ", ".join(f"{k}={v}" for k, v in c.thresholds.items())
        checks.add_row(Text(c.severity.value, STYLE[c.severity.value]), f"{c.id}: {c.title}", _n(c.count),
                       thresholds, Text(c.note or state, STYLE[state]))
    out.append(checks)

    fired = [c for c in report.checks if c.fired and c.records]
    if fired and records:
        table = Table(title=f"offending records (first {records} per check)", title_justify="left")
        for col in ("check", "record", "label", "detail"):
            table.add_column(col, overflow="fold")
        for c in fired:
            for r in c.records[:records]:
                table.add_row(c.id, f"{r['entity']} {r['source']}/{r['id']}", r["label"] or "", r["detail"])
            if c.count > records:
                table.add_row(c.id, f"… {c.count - records:,} more", "", "", style="dim")
        out.append(table)

    m = report.metrics
    summary = Table(title="metrics", title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    lc = m.get("lead_conversion")
    if lc:
        summary.add_row("lead → deal conversion", f"{_pct(lc['rate'])} ({lc['converted']:,} of {lc['leads']:,})")
    wr = m["win_rate"]
    summary.add_row("win rate", f"{_pct(wr['rate'])} ({wr['won']:,} won, {wr['lost']:,} lost)")
    cyc = m["sales_cycle"]
    summary.add_row("sales cycle (days)", f"mean {_n(cyc['mean_days'])} · median {_n(cyc['median_days'])} · "
                    f"p90 {_n(cyc['p90_days'])} ({cyc['deals']:,} won)")
    for d in m["deal_size"]:
        summary.add_row(f"average won deal {d['currency']}", f"{_n(d['average'])} ({d['won']:,} won)")
    for v in m["velocity"]:
        summary.add_row(f"velocity {v['currency']} / day", f"{_n(v['per_day'])} ({v['open_deals']:,} open)")
    b = m.get("bottleneck")
    if b:
        summary.add_row("bottleneck stage", f"{b['name']} (median {_n(b['median_days'])} d × drop-off "
                        f"{_pct(b['drop_off'])})")
    out.append(summary)

    for fn in m["funnel"]:
        t = Table(title=f"funnel — {fn['pipeline_name'] or fn['pipeline_id']} ({fn['deals']:,} deals, "
                  f"{fn['won']:,} won)", title_justify="left")
        for col, just in (("stage", "left"), ("reached", "right"), ("→ next", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for s in fn["stages"]:
            t.add_row(s["name"], _n(s["reached"]), _pct(s["conversion_to_next"]))
        out.append(t)

    if m["time_in_stage"]:
        t = Table(title="time in stage (days)", title_justify="left")
        for col, just in (("stage", "left"), ("spans", "right"), ("mean", "right"), ("median", "right"),
                          ("p90", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for s in m["time_in_stage"]:
            t.add_row(s["name"], _n(s["spans"]), _n(s["mean_days"]), _n(s["median_days"]), _n(s["p90_days"]))
        out.append(t)

    if m["pipeline_value"]:
        t = Table(title="open pipeline value by stage", title_justify="left")
        for col, just in (("currency", "left"), ("stage", "left"), ("deals", "right"), ("value", "right"),
                          ("weighted", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for s in m["pipeline_value"]:
            t.add_row(s["currency"], s["name"] or "—", _n(s["deals"]), _n(s["value"]), _n(s["weighted"]))
        out.append(t)

    if lc:
        t = Table(title="lead conversion by source / channel / owner / month", title_justify="left")
        for col, just in (("by", "left"), ("key", "left"), ("leads", "right"), ("converted", "right"),
                          ("rate", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for dim in ("source_name", "channel", "owner", "month"):
            for r in lc[f"by_{dim}"]:
                t.add_row(dim, r["key"], _n(r["leads"]), _n(r["converted"]), _pct(r["rate"]))
        out.append(t)
    return out
