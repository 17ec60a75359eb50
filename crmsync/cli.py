"""The ``crmsync`` command line. It parses options, calls the library and renders results.

No logic lives here: every command is a thin shell over a library function,
so what the CLI does can also be done from Python.

Exit codes (also in ``crmsync --help``): 0 success; 1 unexpected error (a bug:
re-run with --debug and report it); 2 configuration or usage error; 3 input
data unreadable; 4 remote API failure (try again later); 5 warehouse locked or
unwritable; 6 budget exhausted (re-run later to resume); 7/8 ``audit --fail-on``
reached by a warning / an error; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crmsync import __version__
from crmsync.audit.cli import audit_command
from crmsync.cli_errors import fail, say
from crmsync.config import STARTER_CONFIG, find_config, load_config
from crmsync.errors import ConfigError
from crmsync.push.cli import migrate_command, push_command, pushlog_command, rollback_command
from crmsync.reconcile import run_reconcile
from crmsync.reconcile.queries import deal_history, list_conversions
from crmsync.sandbox.cli import sandbox_app
from crmsync.sync import COUNT_NAMES, RunSummary, estimate_sync, run_sync
from crmsync.warehouse import Warehouse

EXIT_CODES = """Exit codes: 0 ok · 1 unexpected error (bug; re-run with --debug) · 2 config/usage error ·
3 input unreadable · 4 remote API failure (retry later) · 5 warehouse locked/unwritable ·
6 budget exhausted (re-run to resume) · 7 audit --fail-on reached by warnings · 8 audit --fail-on reached by
errors · 130 interrupted."""

app = typer.Typer(
    name="crmsync",
    help="Keep CRM pipeline data honest and portable.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)
if not out.is_terminal:  # piped or captured: don't squeeze tables into 80 columns
    out.width = max(out.width, 132)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="CRMSYNC_CONFIG", help="Config file (default ./crmsync.toml)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"crmsync {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Keep CRM pipeline data honest and portable."""


@app.command()
def sync(
    config: ConfigOpt = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")
    ] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Print the requests and tokens the run would spend; spend none.")
    ] = False,
    reconcile: Annotated[
        bool,
        typer.Option("--reconcile/--no-reconcile", help="Rebuild conversions, timelines and identity links after."),
    ] = True,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Pull every configured source into the warehouse and print what changed.

    Example:  crmsync sync --config config.example.toml
    """
    try:
        cfg = load_config(find_config(config))
        if estimate:
            plans = estimate_sync(cfg, only=source)
            if as_json:
                print(json.dumps(plans, indent=2))
            else:
                _print_estimate(plans)
            return
        with _Progress(enabled=not as_json and err.is_terminal) as progress:
            summary = run_sync(cfg, only=source, progress=progress.update, reconcile=reconcile)
    except KeyboardInterrupt:
        say("crmsync: interrupted; the next run resumes from what was committed")
        raise typer.Exit(130) from None
    except Exception as exc:
        raise fail(exc, debug) from None
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
    failed = [s for s in summary.sources if s.status != "ok"]
    if failed:
        for s in failed:
            say(f"crmsync: error: source {s.name}: {s.error}")
        raise typer.Exit(failed[0].exit_code)


@app.command()
def status(
    config: ConfigOpt = None,
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, help="How many recent runs to show.")] = 5,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show the last runs, row counts per table and cursors.

    Example:  crmsync status --config config.example.toml --runs 3
    """
    report = _read(config, debug, lambda wh: wh.status(last=runs))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_status(report)


@app.command()
def reconcile(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Link leads to the deals they became, rebuild deal timelines, link identities across sources.

    Example:  crmsync reconcile --config config.example.toml
    """
    try:
        summary = run_reconcile(load_config(find_config(config)))
    except Exception as exc:
        raise fail(exc, debug) from None
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
        return
    table = Table(title=f"reconcile run {summary.run_id} in {summary.seconds:.2f}s")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("by kind")
    for name, count in summary.counts.items():
        kinds = ", ".join(f"{k} {v:,}" for k, v in summary.by_kind.get(name, {}).items())
        table.add_row(name, f"{count:,}", kinds)
    out.print(table)


@app.command()
def conversions(
    config: ConfigOpt = None,
    method: Annotated[str | None, typer.Option("--method", help="explicit, captured or inferred.")] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence", min=0, max=1, help="Hide weaker links.")] = 0.0,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only leads of this source.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")] = 50,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List lead→deal conversions with how each is known (method, confidence, reasons).

    Example:  crmsync conversions --method inferred --min-confidence 0.8
    """
    rows = _read(config, debug, lambda wh: list_conversions(wh.conn, method=method, min_confidence=min_confidence,
                                                            source=source, limit=limit))
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"conversions ({len(rows)} shown)")
    for col in ("lead", "deal", "converted", "method", "conf.", "days", "reasons"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r['lead_id']} {r['lead_title'] or ''}".strip(), f"{r['deal_id']} {r['deal_title'] or ''}",
                      r["converted_at"] or "", r["method"], f"{r['confidence']:.2f}",
                      "" if r["days_to_convert"] is None else f"{r['days_to_convert']:.1f}", "; ".join(r["reasons"]))
    out.print(table)


@app.command()
def history(
    deal: Annotated[str, typer.Argument(help="The deal's id in its source.")],
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="The deal's source, if ids clash.")] = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Print one deal's timeline, each event with the evidence it came from, and its time in stage.

    Example:  crmsync history 42 --source pipedrive_sandbox
    """
    report = _read(config, debug, lambda wh: deal_history(wh.conn, deal, source))
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{report['source']} deal {deal}: {report['title']} — {report['status']}, {report['stage']}")
    for col in ("#", "at", "event", "from", "to", "category", "evidence"):
        table.add_column(col)
    for e in report["events"]:
        table.add_row(str(e["seq"]), e["at"], e["kind"], e["old_value"] or "", e["new_value"] or "",
                      e["stage_category"] or "", e["evidence"])
    out.print(table)
    for s in report["spans"]:
        days = "open" if s["seconds"] is None else f"{s['seconds'] / 86400:.1f} days"
        out.print(f"in {s['stage_name'] or s['stage_id']}: {days} (from {s['entered_at']})", markup=False)
    for v in report["violations"]:
        out.print(f"violation {v['rule']}: {v['detail']}", markup=False)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter config.")] = Path("crmsync.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter config to edit.

    Example:  crmsync init crmsync.toml && crmsync sync
    """
    try:
        if path.exists() and not force:
            raise ConfigError(f"{path}: already exists; pass --force to overwrite")
        path.write_text(STARTER_CONFIG, encoding="utf-8")
    except Exception as exc:
        raise fail(exc, debug) from None
    out.print(f"wrote {path}; edit [sources.*] then run: crmsync sync --config {path}", markup=False)


app.command("audit")(audit_command)
app.command("push")(push_command)
app.command("migrate")(migrate_command)
app.command("rollback")(rollback_command)
app.command("pushlog")(pushlog_command)
app.add_typer(sandbox_app, name="sandbox")


def _read(config: Path | None, debug: bool, query: Callable[[Warehouse], Any]) -> Any:
    """Run a read-only ``query`` on the configured warehouse; failures become one line and an exit code."""
    try:
        cfg = load_config(find_config(config))
        with Warehouse.open(cfg.warehouse.path, write=False) as wh:
            return query(wh)
    except Exception as exc:
        raise fail(exc, debug) from None


class _Progress:
    """A rich progress line on stderr showing rows read and rows/s (only on a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=True,
            )
            self._progress.start()
        return self

    def update(self, label: str, rows: int) -> None:
        if self._progress is None:
            return
        if label not in self._tasks:
            self._tasks[label] = (self._progress.add_task(label, total=None, rate=""), time.perf_counter())
        task, t0 = self._tasks[label]
        rate = rows / max(time.perf_counter() - t0, 1e-6)
        self._progress.update(task, completed=rows, rate=f"{rate:,.0f} rows/s")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"run {summary.run_id}: {summary.status} in {summary.seconds:.2f}s → {summary.warehouse}")
    table.add_column("source")
    table.add_column("entity")
    for name in COUNT_NAMES:
        table.add_column(name, justify="right")
    for e in summary.entities:
        table.add_row(e.source, e.entity, *(f"{getattr(e, n):,}" for n in COUNT_NAMES))
    totals = summary.totals()
    table.add_row("", "total", *(f"{totals[n]:,}" for n in COUNT_NAMES), style="bold")
    out.print(table)
    for s in summary.sources:
        for notice in s.notices:
            times = f" ({notice['count']} rows)" if notice["count"] > 1 else ""
            out.print(f"note: {s.name}: {notice['message']}{times}", markup=False, highlight=False)
    if summary.reconcile:
        counts = summary.reconcile["counts"]
        out.print(f"reconciled: {counts['conversions']:,} conversions, {counts['reconcile_conflicts']:,} conflicts, "
                  f"{counts['timeline_violations']:,} timeline violations, {counts['identity_links']:,} identity "
                  "links (crmsync conversions / crmsync history DEAL)", markup=False, highlight=False)
    if totals["quarantined"]:
        out.print(f"{totals['quarantined']:,} row(s) quarantined: see the quarantine table "
                  f"(sqlite3 {summary.warehouse} 'select * from quarantine where run_id={summary.run_id}')",
                  markup=False, highlight=False)


def _print_estimate(plans: dict[str, Any]) -> None:
    for name, plan in plans.items():
        if plan is None:
            out.print(f"{name}: no API requests (local files)", markup=False)
            continue
        out.print(f"{name}: about {plan['requests']:,} requests, {plan['tokens']:,} tokens", markup=False)
        for line in plan.get("lines", []):
            note = f" ({line['note']})" if line.get("note") else ""
            out.print(f"  {line['endpoint']}: {line['requests']:,} req, {line['tokens']:,} tokens{note}", markup=False)
        for note in plan.get("notes", []):
            out.print(f"  note: {note}", markup=False)


def _print_status(report: dict[str, Any]) -> None:
    runs = Table(title=f"last runs — {report['warehouse']}")
    for col in ("run", "command", "status", "started", "finished", "read", "quarantined", "error"):
        runs.add_column(col)
    for r in report["runs"]:
        read = sum(c["read"] for c in r["counts"])
        quarantined = sum(c["quarantined"] for c in r["counts"])
        runs.add_row(str(r["id"]), r["command"], r["status"], r["started_at"] or "", r["finished_at"] or "",
                     f"{read:,}", f"{quarantined:,}", (r["error"] or "")[:80])
    out.print(runs)
    tables = Table(title="tables")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    tables.add_column("removed", justify="right")
    for name, info in report["tables"].items():
        tables.add_row(name, f"{info['rows']:,}", f"{info.get('removed', ''):,}" if "removed" in info else "")
    out.print(tables)
    if report["cursors"]:
        cursors = Table(title="cursors")
        for col in ("source", "stream", "value", "run", "updated"):
            cursors.add_column(col)
        for c in report["cursors"]:
            cursors.add_row(c["source"], c["stream"], c["value"], str(c["run_id"]), c["updated_at"])
        out.print(cursors)
    else:
        out.print("cursors: none (no incremental source has run yet)")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="crmsync")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
