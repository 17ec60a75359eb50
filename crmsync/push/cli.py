"""``crmsync push``, ``migrate``, ``rollback`` and ``pushlog``: parse options, call the runner, render.

No logic here beyond turning flags into :class:`~crmsync.push.plan.PushSettings`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crmsync.cli_errors import fail, say
from crmsync.config import find_config, load_config
from crmsync.errors import ConfigError
from crmsync.warehouse import Warehouse

from .ledger import Ledger
from .plan import ORDER, PushSettings
from .runner import PushReport, run_push, run_rollback, sample_scope

out = Console()
if not out.is_terminal:
    out.width = max(out.width, 132)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", envvar="CRMSYNC_CONFIG",
                                                help="Config file (default ./crmsync.toml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
ApplyOpt = Annotated[bool, typer.Option("--apply", help="Carry the plan out. Without it nothing is written.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite records changed in the target since crmsync "
                                                        "read them (conflicts).")]
RefreshOpt = Annotated[bool, typer.Option("--refresh/--no-refresh", help="Read the target (incrementally) first.")]


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out_: dict[str, str] = {}
    for v in values or ():
        entity, sep, value = v.partition("=")
        if not sep or not value:
            raise ConfigError(f"{flag} {v}: expected ENTITY=VALUE, e.g. {flag} person=enrich")
        out_[entity.strip()] = value.strip()
    return out_


def push_command(
    target: Annotated[str, typer.Argument(help="The configured CRM source to write into.")],
    origin: Annotated[str | None, typer.Option(
        "--from", help="Source whose records are pushed (default: the target itself, to write normalized values back)."
    )] = None,
    entity: Annotated[list[str] | None, typer.Option(
        "--entity", "-e", help=f"Only these ({', '.join(ORDER)})."
    )] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", help="ENTITY=insert|update|upsert|enrich|mirror "
                                                                  "(repeatable).")] = None,
    match: Annotated[list[str] | None, typer.Option("--match", help="ENTITY=key,email,name,domain,fingerprint "
                                                                    "(repeatable).")] = None,
    normalize: Annotated[bool, typer.Option("--normalize", help="Push normalized values: E.164 phones, lowercased "
                                                                "emails, trimmed names.")] = False,
    apply: ApplyOpt = False,
    force: ForceOpt = False,
    do_refresh: RefreshOpt = True,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show what pushing records into TARGET would change; --apply writes it.

    Example:  crmsync push pipedrive --normalize --entity person          (plan only)
              crmsync push pipedrive --normalize --entity person --apply
    """
    try:
        cfg = load_config(find_config(config))
        settings = PushSettings(
            origin=origin or target, target=target, entities=tuple(entity) if entity else ORDER,
            modes=_pairs(mode, "--mode"),
            match={k: tuple(x.strip() for x in v.split(",")) for k, v in _pairs(match, "--match").items()},
            normalize=normalize, force=force)
        report = run_push(cfg, settings, apply=apply, do_refresh=do_refresh)
    except KeyboardInterrupt:
        say("crmsync: interrupted; re-run the same command: pending creates are looked up before creating again")
        raise typer.Exit(130) from None
    except Exception as exc:
        raise fail(exc, debug) from None
    _render(report, as_json)


def migrate_command(
    origin: Annotated[str, typer.Option("--from", help="The source to migrate (any configured source).")],
    target: Annotated[str, typer.Option("--to", help="The Pipedrive company to migrate into.")],
    sample: Annotated[int | None, typer.Option("--sample", min=1, help="Only N deals with their persons, "
                                                                       "organizations, pipelines and stages.")] = None,
    stage_map: Annotated[Path | None, typer.Option("--stage-map", help="TOML file: \"Origin pipeline/Stage\" = "
                                                                       "\"Target pipeline/Stage\".")] = None,
    sync_origin: Annotated[bool, typer.Option("--sync/--no-sync", help="Read the origin first.")] = True,
    apply: ApplyOpt = False,
    force: ForceOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Migrate a source (a Pipedrive company, spreadsheet exports) into a Pipedrive company.

    Shows the plan; --apply migrates, then prints a verification report. Re-running changes nothing;
    `crmsync rollback RUN` undoes a run.

    Example:  crmsync migrate --from old_crm_export --to pipedrive --sample 20 --apply
    """
    try:
        cfg = load_config(find_config(config))
        if sync_origin:
            from crmsync.sync import run_sync

            summary = run_sync(cfg, only=[origin], reconcile=True, command="sync")
            if summary.status != "succeeded":
                raise ConfigError(f"reading {origin} failed: {summary.sources[0].error}")
        settings = PushSettings(origin=origin, target=target, force=force, stage_map=_stage_map(stage_map))
        if sample:
            with Warehouse.open(cfg.warehouse.path, write=False) as wh:
                settings.scope = sample_scope(wh.conn, origin, sample)
        report = run_push(cfg, settings, apply=apply, command="migrate", notes=True, verify=True)
    except KeyboardInterrupt:
        say("crmsync: interrupted; re-run the same command to finish: nothing is created twice")
        raise typer.Exit(130) from None
    except Exception as exc:
        raise fail(exc, debug) from None
    _render(report, as_json)
    if report.verification is not None and not report.verification["ok"] and not as_json:
        say("crmsync: the verification found missing records or broken links (see above)")


def rollback_command(
    run_id: Annotated[int, typer.Argument(help="The push/migrate run to undo (crmsync status lists runs).")],
    force: Annotated[bool, typer.Option("--force", help="Undo even records changed in the target since.")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Delete what a push/migrate run created and restore what it updated.

    Refuses records changed in the target since that run (unless --force).

    Example:  crmsync rollback 12
    """
    try:
        result = run_rollback(load_config(find_config(config)), run_id, force=force)
    except Exception as exc:
        raise fail(exc, debug) from None
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    out.print(f"rollback of run {run_id}: {result['deleted']} deleted, {result['restored']} restored, "
              f"{len(result['refused'])} refused, {len(result.get('failed', []))} failed", markup=False)
    for r in result["refused"][:20] + result["kept"][:20] + result.get("failed", [])[:20]:
        out.print(f"  {r['entity']} {r['target_id']}: {r['reason']}", markup=False, highlight=False)
    if result["refused"] or result.get("failed"):
        raise typer.Exit(4)


def pushlog_command(
    what: Annotated[str, typer.Argument(help="idmap or rejected.")],
    target: Annotated[str | None, typer.Option("--target", help="Only this target.")] = None,
    run_id: Annotated[int | None, typer.Option("--run", help="Only this run.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export the ID map (origin record → target id, run, action) or the rejected writes with the API's error.

    Example:  crmsync pushlog idmap --target pipedrive --format csv -o idmap.csv
    """
    try:
        if what not in ("idmap", "rejected"):
            raise ConfigError(f"pushlog {what}: choose idmap or rejected")
        if fmt not in ("csv", "json"):
            raise ConfigError(f"--format {fmt}: choose csv or json")
        cfg = load_config(find_config(config))
        with Warehouse.open(cfg.warehouse.path) as wh:
            rows = Ledger(wh.conn).export("id_map" if what == "idmap" else "push_rejected", target, run_id)
    except Exception as exc:
        raise fail(exc, debug) from None
    stream = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        if fmt == "json":
            json.dump(rows, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        else:
            columns = list(rows[0]) if rows else ["target", "entity", "origin", "origin_id", "target_id", "run_id"]
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            stream.close()


def _stage_map(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--stage-map {path}: {exc}") from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"--stage-map {path}: {bad[0]!r} must map to a \"Pipeline/Stage\" string")
    return data


def _render(report: PushReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
        return
    verb = "applied" if report.applied else f"plan {report.plan_id} (nothing written; add --apply)"
    table = Table(title=f"{report.command} {report.origin} → {report.target}: run {report.run_id}, {verb}")
    actions = ["create", "update", "delete", "skip", "conflict", "rejected", "unknown", "recovered"]
    table.add_column("entity")
    for a in actions:
        table.add_column(a, justify="right")
    for entity, counts in report.counts.items():
        table.add_row(entity, *(f"{counts.get(a, 0):,}" for a in actions))
    out.print(table)
    if not report.applied:
        out.print(f"cost: {report.cost['requests']:,} requests, {report.cost['tokens']:,} tokens", markup=False)
        for entity, samples in report.samples.items():
            for s in samples[:3]:
                changes = "; ".join(f"{k}: {_short(v[0])} → {_short(v[1])}" for k, v in list(s["changes"].items())[:6])
                out.print(f"  {s['action']} {entity} {s['origin_id']}"
                          f"{' → ' + s['target_id'] if s['target_id'] else ''}: {changes}",
                          markup=False, highlight=False)
    else:
        u = report.usage
        out.print(f"spent: {u.get('requests', 0):,} requests, {u.get('tokens', 0):,} tokens in {report.seconds:.1f}s",
                  markup=False)
    for p in report.problems[:20]:
        out.print(f"  {p['status']}: {p['entity']} {p['origin_id']}: {p['reason']}", markup=False, highlight=False)
    for n in report.notices[:10]:
        times = f" ({n['count']}×)" if n["count"] > 1 else ""
        out.print(f"note: {n['message']}{times}", markup=False, highlight=False)
    if report.verification:
        _render_verification(report.verification)


def _render_verification(v: dict[str, Any]) -> None:
    table = Table(title="verification: " + ("OK" if v["ok"] else "PROBLEMS"))
    for col in ("entity", "origin", "in target", "rejected", "missing", "relationships"):
        table.add_column(col)
    for entity, c in v["counts"].items():
        rel = ", ".join(f"{k} {n}" for k, n in v["relationships"].get(entity, {}).get("counts", {}).items())
        table.add_row(entity, f"{c['origin']:,}", f"{c['in_target']:,}", f"{c.get('rejected', 0):,}",
                      f"{c['missing']:,}", rel)
    out.print(table)
    for entity, rows in v.get("rejected", {}).items():
        for r in rows[:5]:
            out.print(f"  rejected {entity} {r['origin_id']}: {r['error']}", markup=False, highlight=False)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
