"""``crmsync audit``: a ready-to-mount typer command (parses options, calls the library, renders).

Mount it with ``app.command("audit")(audit_command)``. Exit codes: the usual crmsync codes for
errors (2 config/usage, 5 warehouse unreadable, …); with ``--fail-on SEVERITY``, when a check of
that severity or worse fired, :data:`FAIL_EXIT_CODES` of the worst severity that fired (proposed:
7 for warning/info, 8 for error), after the report was written.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from crmsync.cli_errors import fail, say
from crmsync.config import find_config, load_config
from crmsync.errors import ConfigError

if TYPE_CHECKING:
    from crmsync.audit.report import AuditReport

#: Exit code per worst fired severity when ``--fail-on`` is reached (the CLI owner may remap these).
FAIL_EXIT_CODES = {"info": 7, "warning": 7, "error": 8}


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    HTML = "html"


class FailOn(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def audit_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="CRMSYNC_CONFIG", help="Config file (default ./crmsync.toml)."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table (terminal), json or html.")] = Format.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file instead of stdout.")
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option("--fail-on", help="Exit non-zero (7 warning, 8 error) when a check this severe or worse fired."),
    ] = None,
    period: Annotated[
        str | None, typer.Option("--period", help="2025, 2025-Q2, 2025-03 or 2025-01-01..2025-03-31.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="First day of the period (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day of the period (YYYY-MM-DD).")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only deals of this pipeline (id or name).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Measure ages (stale, aging, rotting) as of this date; default now.")
    ] = None,
    records: Annotated[
        int | None, typer.Option("--records", min=0, help="Offending records listed per check (default [audit] "
                                                          "max_records, 20).")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Audit this warehouse file (no config needed).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Check pipeline data quality and compute sales metrics: terminal tables, JSON or one HTML file.

    Example:  crmsync audit --config config.example.toml --format html --output report.html --fail-on error
    """
    # imported here, not at module level: every other command starts without the audit engine
    from crmsync.audit.report import fails, run_audit
    from crmsync.audit.settings import AuditConfig, Filters, Severity, audit_config_from

    try:
        if db is not None:
            path, settings = db, AuditConfig()
            if config is not None:
                settings = audit_config_from(load_config(find_config(config)))
        else:
            cfg = load_config(find_config(config))
            path, settings = cfg.warehouse.path, audit_config_from(cfg)
        if records is not None:
            settings = settings.model_copy(update={"max_records": records})
        filters = Filters.make(as_of=as_of, period=period, since=since, until=until, pipeline=pipeline)
        report = run_audit(path, settings, filters)
        _write(report, fmt, output)
    except Exception as exc:
        raise fail(exc, debug) from None
    if fail_on is not None and fails(report, fail_on.value):
        worst = report.worst
        assert worst is not None
        failed = sum(1 for c in report.checks if c.fired and c.severity.rank >= Severity(fail_on.value).rank)
        say(f"crmsync: audit: {failed} check(s) at or above {fail_on.value} fired (worst: {worst.value})")
        raise typer.Exit(FAIL_EXIT_CODES[worst.value])


def _write(report: AuditReport, fmt: Format, output: Path | None) -> None:
    from crmsync.audit.render import renderables
    from crmsync.audit.report_html import to_html
    from crmsync.audit.report_json import to_json

    if fmt is Format.TABLE:
        console = Console(file=output.open("w", encoding="utf-8") if output else None,
                          width=132 if output else None)
        if output is None and not console.is_terminal:
            console.width = max(console.width, 132)
        for item in renderables(report, records=min(report.config.max_records, 5)):
            console.print(item)
        if output:
            console.file.close()
        return
    text = to_json(report) + "\n" if fmt is Format.JSON else to_html(report)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{output}: cannot write the report: {exc.strerror}") from None
    sys.stderr.write(f"wrote {output}\n")


#: A stand-alone app for trying the command before it is mounted: ``python -m crmsync.audit.cli --help``.
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
app.command(name="audit")(audit_command)

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="crmsync audit")
