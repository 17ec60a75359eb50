"""Sales metrics from the canonical model and the reconciled stage history, computed in SQLite.

Definitions (``period`` = ``--since``..``--until`` inclusive, or ``--period``; no period = all time;
``--pipeline`` keeps deals whose ``pipeline_id`` or ``pipeline_name`` matches):

* **lead_conversion** — leads *added* in the period; a lead is converted when ``conversions`` (built by
  ``crmsync reconcile``: explicit, captured or inferred) links it to a deal. Rate = converted / leads, overall and
  by ``source_name``, ``channel``, owner (user name) and month of ``add_time`` (the "conversion over time" series).
  Leads have no pipeline: the pipeline filter does not apply to them.
* **funnel** — deals *added* in the period whose current stage has a position, per (source, pipeline). A deal
  reached stage *k* when its current stage, or a stage it later moved back from (``deal_timeline``), ranks ≥ *k*
  (stage rank = order of ``stages.position`` in the pipeline; skipped stages count as passed).
  ``conversion_to_next`` = reached(k+1) / reached(k); for the last stage it is (won deals that reached it) /
  reached(last). ``won`` counts the cohort's won deals.
* **win_rate** — deals *closed* in the period (``close_time``, else ``won_time``/``lost_time``): won / (won + lost).
* **deal_size** — won deals closed in the period, per currency: count, total and average value (deals without a
  value are counted in ``without_value`` and left out of the average).
* **sales_cycle** — won deals closed in the period with an ``add_time``: days from ``add_time`` to ``won_time``
  (else ``close_time``): mean, median, p90.
* **velocity** — per currency: open deals now (in that currency) × win_rate × average deal size ÷ mean sales
  cycle days = expected value won per day.
* **time_in_stage** — completed stage spans (``stage_spans.seconds`` not null) that *entered* the stage in the
  period, per stage: count, mean, median and p90 days. Percentiles interpolate linearly between closest ranks
  (numpy's default), in Python over the streamed values.
* **bottleneck** — the funnel stage with the highest median days in stage × drop-off (1 − conversion_to_next).
* **pipeline_value** — open deals *now* (period ignored), per stage and currency: count, total value and value
  weighted by probability (the deal's, else the stage's; unknown = 0).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter, defaultdict
from typing import Any

from crmsync.audit.checks import DEAL_SCOPE, STAGE_RANK, existing_tables, prepare
from crmsync.audit.settings import Filters

PERIOD = "(:since IS NULL OR {0} >= :since) AND (:until IS NULL OR {0} < :until)"


def period(column: str, params: dict[str, Any]) -> str:
    """The period condition on ``column``; ``1`` when there is no period (nothing to evaluate per row)."""
    if params.get("since") is None and params.get("until") is None:
        return "1"
    return PERIOD.format(column)
CLOSED_AT = "COALESCE(d.close_time, d.won_time, d.lost_time)"
WON_AT = "COALESCE(d.won_time, d.close_time)"


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of an ascending, non-empty list."""
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    if lo + 1 >= len(ordered):
        return ordered[lo]
    return ordered[lo] + (h - lo) * (ordered[lo + 1] - ordered[lo])


def summarize(values: list[float]) -> dict[str, Any]:
    """count, mean, median (p50) and p90 of ``values`` (sorted in place)."""
    values.sort()
    return {"count": len(values), "mean": math.fsum(values) / len(values), "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9)}


def grouped(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """Summaries of the values of ``sql`` (rows of ``(group key, non-null value)``) per group key.

    SQLite filters and projects; the values are streamed once into per-group lists and sorted in Python
    (measured faster here than ranking with window functions or GROUP BY, which sort every row in SQLite).
    """
    groups: dict[Any, list[float]] = defaultdict(list)
    for key, value in conn.execute(sql, params):
        groups[key].append(value)
    return {key: summarize(values) for key, values in groups.items()}


def compute_metrics(conn: sqlite3.Connection, filters: Filters) -> dict[str, Any]:
    tables = existing_tables(conn)
    prepare(conn, tables)
    params = filters.params()
    stages = _stages(conn) if "stages" in tables else {}
    metrics: dict[str, Any] = {}
    metrics["lead_conversion"] = lead_conversion(conn, params) if {"leads", "conversions"} <= tables else None
    metrics["funnel"] = funnel(conn, params, stages)
    metrics["win_rate"] = win_rate(conn, params)
    metrics["deal_size"] = deal_size(conn, params)
    metrics["sales_cycle"] = sales_cycle(conn, params)
    metrics["velocity"] = velocity(conn, params, metrics)
    metrics["time_in_stage"] = time_in_stage(conn, params, stages) if "stage_spans" in tables else []
    metrics["bottleneck"] = bottleneck(metrics["funnel"], metrics["time_in_stage"])
    metrics["pipeline_value"] = pipeline_value(conn, params, stages)
    return metrics


def _stages(conn: sqlite3.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """(source, stage_id) -> name, pipeline, rank (1-based within the pipeline, None without a position)."""
    out = {}
    for source, sid, pipeline, name, category, rk in conn.execute(
        f"WITH {STAGE_RANK} SELECT s.source, s.source_id, s.pipeline_id, s.name, s.category, r.rk FROM stages s "
        "LEFT JOIN stage_rank r ON r.source = s.source AND r.stage_id = s.source_id WHERE s.removed_run IS NULL"
    ):
        out[(source, sid)] = {"pipeline_id": pipeline, "name": name, "category": category, "rank": rk}
    return out


def lead_conversion(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    users = {(s, i): n for s, i, n in conn.execute("SELECT source, source_id, name FROM users")}
    # Counted in Python (Counter runs in C) over one streamed scan: GROUP BY would sort every lead.
    tally = Counter(conn.execute(
        "SELECT l.source, COALESCE(l.source_name, '(none)'), COALESCE(l.channel, '(none)'), l.owner_id, "
        "COALESCE(substr(l.add_time, 1, 7), '(unknown)'), EXISTS (SELECT 1 FROM temp.audit_converted_leads c "
        "WHERE c.source = l.source AND c.lead_id = l.source_id) FROM leads l NOT INDEXED "
        f"WHERE l.removed_run IS NULL AND {period('l.add_time', params)}",
        params,
    ))
    merged: Counter[tuple] = Counter()
    for (source, name, channel, owner, month, converted), n in tally.items():
        key = (name, channel, users.get((source, owner)) or owner or "(none)", month)
        merged[(*key, "leads")] += n
        if converted:
            merged[(*key, "converted")] += n
    rows = [(*key[:4], n, merged.get((*key[:4], "converted"), 0)) for key, n in merged.items() if key[4] == "leads"]
    dims = {"source_name": 0, "channel": 1, "owner": 2, "month": 3}
    total = [0, 0]
    acc: dict[str, dict[str, list[int]]] = {d: defaultdict(lambda: [0, 0]) for d in dims}
    for row in rows:
        leads, converted = row[4], row[5] or 0
        total[0] += leads
        total[1] += converted
        for dim, i in dims.items():
            acc[dim][row[i]][0] += leads
            acc[dim][row[i]][1] += converted

    def listing(dim: str) -> list[dict[str, Any]]:
        items = sorted(acc[dim].items(), key=(lambda kv: kv[0]) if dim == "month" else (lambda kv: (-kv[1][0], kv[0])))
        return [{"key": k, "leads": n, "converted": c, "rate": _rate(c, n)} for k, (n, c) in items]

    return {"leads": total[0], "converted": total[1], "rate": _rate(total[1], total[0]),
            **{f"by_{dim}": listing(dim) for dim in dims}}


def funnel(conn: sqlite3.Connection, params: dict[str, Any], stages: dict) -> list[dict[str, Any]]:
    if not stages:
        return []
    # The highest stage a deal reached is its current stage, unless it later went back: then it is the
    # stage it went back from (a backward move of the timeline; see checks.PREPARE).
    # A histogram of current stage ranks in one scan, then the few deals that went back are moved up to the
    # stage they went back from (audit_deal_peak).
    per: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    won: dict[tuple, int] = defaultdict(int)
    won_at: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for source, stage_id, is_won, count in conn.execute(
        f"SELECT d.source, d.stage_id, d.status = 'won', COUNT(*) FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} "
        f"AND {period('d.add_time', params)} GROUP BY 1, 2, 3",
        params,
    ):
        info = stages.get((source, stage_id))
        if not info or not info["rank"]:
            continue
        pipeline, top = info["pipeline_id"], info["rank"]
        per[(source, pipeline)][top] += count
        if is_won:
            won[(source, pipeline)] += count
            won_at[(source, pipeline)][top] += count
    for source, pipeline, current, peak, is_won in conn.execute(
        "SELECT d.source, cr.pipeline_id, cr.rk, p.peak, d.status = 'won' FROM temp.audit_deal_peak p "
        "JOIN deals d ON d.source = p.source AND d.source_id = p.deal_id "
        "JOIN temp.audit_stage_rank cr ON cr.source = d.source AND cr.stage_id = d.stage_id "
        "AND cr.pipeline_id IS p.pipeline_id "
        f"WHERE cr.rk IS NOT NULL AND p.peak > cr.rk AND {DEAL_SCOPE} AND {period('d.add_time', params)}",
        params,
    ):
        for hist in (per, won_at) if is_won else (per,):
            hist[(source, pipeline)][current] -= 1
            hist[(source, pipeline)][peak] += 1
    names = _pipeline_names(conn)
    out = []
    for (source, pipeline), tops in sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        ranked = sorted(((info["rank"], sid, info["name"]) for (s, sid), info in stages.items()
                         if s == source and info["pipeline_id"] == pipeline and info["rank"]))
        steps = []
        for rank, sid, name in ranked:
            reached = sum(c for top, c in tops.items() if top >= rank)
            steps.append({"stage_id": sid, "name": name, "rank": rank, "reached": reached})
        for i, step in enumerate(steps):
            following = (steps[i + 1]["reached"] if i + 1 < len(steps) else
                         sum(c for top, c in won_at[(source, pipeline)].items() if top >= step["rank"]))
            step["conversion_to_next"] = _rate(following, step["reached"])
        out.append({"source": source, "pipeline_id": pipeline, "pipeline_name": names.get((source, pipeline)),
                    "deals": sum(tops.values()), "won": won[(source, pipeline)], "stages": steps})
    return out


def _pipeline_names(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    return {(s, i): n for s, i, n in conn.execute("SELECT source, source_id, name FROM pipelines")}


def win_rate(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    won, lost = conn.execute(
        "SELECT COALESCE(SUM(d.status = 'won'), 0), COALESCE(SUM(d.status = 'lost'), 0) FROM deals d NOT INDEXED "
        f"WHERE {DEAL_SCOPE} AND d.status IN ('won', 'lost') AND {period(CLOSED_AT, params)}",
        params,
    ).fetchone()
    return {"won": won, "lost": lost, "rate": _rate(won, won + lost)}


def deal_size(conn: sqlite3.Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for currency, won, valued, total in conn.execute(
        "SELECT COALESCE(d.currency, '(none)'), COUNT(*), COUNT(d.value), SUM(CAST(d.value AS REAL)) "
        "FROM deals d NOT INDEXED "
        f"WHERE {DEAL_SCOPE} AND d.status = 'won' AND {period(WON_AT, params)} GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    ):
        out.append({"currency": currency, "won": won, "without_value": won - valued, "total": _r(total),
                    "average": _r(total / valued) if valued else None})
    return out


def sales_cycle(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    q = grouped(
        conn,
        f"SELECT NULL, julianday({WON_AT}) - julianday(d.add_time) FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} "
        f"AND d.status = 'won' AND d.add_time IS NOT NULL AND {WON_AT} IS NOT NULL AND {period(WON_AT, params)}",
        params,
    ).get(None)
    if not q:
        return {"deals": 0, "mean_days": None, "median_days": None, "p90_days": None}
    return {"deals": q["count"], "mean_days": _r(q["mean"]), "median_days": _r(q["p50"]), "p90_days": _r(q["p90"])}


def velocity(conn: sqlite3.Connection, params: dict[str, Any], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rate = metrics["win_rate"]["rate"]
    cycle = metrics["sales_cycle"]["mean_days"]
    sizes = {d["currency"]: d["average"] for d in metrics["deal_size"]}
    out = []
    for currency, open_deals in conn.execute(
        f"SELECT COALESCE(d.currency, '(none)'), COUNT(*) FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} "
        "AND d.status = 'open' "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    ):
        size = sizes.get(currency)
        value = (open_deals * rate * size / cycle) if rate is not None and size is not None and cycle else None
        out.append({"currency": currency, "open_deals": open_deals, "win_rate": rate, "average_deal_size": size,
                    "cycle_days": cycle, "per_day": _r(value)})
    return out


def time_in_stage(conn: sqlite3.Connection, params: dict[str, Any], stages: dict) -> list[dict[str, Any]]:
    join = ("JOIN deals d ON d.source = s.source AND d.source_id = s.deal_id "
            f"WHERE {DEAL_SCOPE} AND " if params.get("pipeline") else "WHERE ")
    q = grouped(
        conn,
        f"SELECT s.source || char(31) || s.stage_id, s.seconds / 86400.0 FROM stage_spans s {join}"
        f"s.seconds IS NOT NULL AND {period('s.entered_at', params)}",
        params,
    )
    out = []
    for key, v in q.items():
        source, sid = key.split("\x1f", 1)
        info = stages.get((source, sid), {})
        out.append({"source": source, "stage_id": sid, "name": info.get("name") or sid,
                    "pipeline_id": info.get("pipeline_id"), "rank": info.get("rank"), "spans": v["count"],
                    "mean_days": _r(v["mean"]), "median_days": _r(v["p50"]), "p90_days": _r(v["p90"])})
    out.sort(key=lambda r: (r["source"], r["pipeline_id"] or "", r["rank"] is None, r["rank"] or 0, r["name"]))
    return out


def bottleneck(funnels: list[dict[str, Any]], dwell: list[dict[str, Any]]) -> dict[str, Any] | None:
    medians = {(r["source"], r["stage_id"]): r["median_days"] for r in dwell}
    best = None
    for f in funnels:
        for step in f["stages"]:
            median = medians.get((f["source"], step["stage_id"]))
            if median is None or step["conversion_to_next"] is None:
                continue
            drop = round(1 - step["conversion_to_next"], 4)
            score = round(median * drop, 4)
            if score > 0 and (best is None or score > best["score"]):
                best = {"source": f["source"], "pipeline_id": f["pipeline_id"], "stage_id": step["stage_id"],
                        "name": step["name"], "median_days": median, "drop_off": drop, "score": score}
    return best


def pipeline_value(conn: sqlite3.Connection, params: dict[str, Any], stages: dict) -> list[dict[str, Any]]:
    probabilities = {(s, i): p for s, i, p in conn.execute(
        "SELECT source, source_id, CAST(probability AS REAL) FROM stages WHERE removed_run IS NULL")}
    out = []
    for source, pipeline, sid, name, currency, count, total, with_own, without_own in conn.execute(
        "SELECT d.source, d.pipeline_id, d.stage_id, COALESCE(d.stage_name, d.stage_id), "
        "COALESCE(d.currency, '(none)'), COUNT(*), SUM(CAST(d.value AS REAL)), "
        "SUM(CAST(d.value AS REAL) * CAST(d.probability AS REAL)), "
        "SUM(CASE WHEN d.probability IS NULL THEN CAST(d.value AS REAL) END) "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'open' GROUP BY 1, 2, 3, 5",
        params,
    ):
        info = stages.get((source, sid), {})
        stage_probability = probabilities.get((source, sid)) or 0.0
        weighted = ((with_own or 0.0) + (without_own or 0.0) * stage_probability) / 100.0
        out.append({"source": source, "pipeline_id": pipeline, "stage_id": sid, "name": info.get("name") or name,
                    "rank": info.get("rank"), "currency": currency, "deals": count, "value": _r(total or 0.0),
                    "weighted": _r(weighted)})
    out.sort(key=lambda r: (r["currency"], r["source"], r["pipeline_id"] or "", r["rank"] is None, r["rank"] or 0,
                            r["name"] or ""))
    return out
