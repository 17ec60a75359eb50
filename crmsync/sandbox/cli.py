"""``crmsync sandbox ...``: run the local Pipedrive sandbox from the command line.

Only parses options and calls :class:`crmsync.sandbox.Sandbox`; the core CLI mounts
``sandbox_app`` as a sub-command, and ``python -m crmsync.sandbox`` runs it alone.

Example::

    $ crmsync sandbox serve --port 8765 --seed 1 --deals 100000
    http://127.0.0.1:8765
    3f0c...e2a1            <- API token of user 1 (admin)
    $ crmsync sandbox serve --port 8766 --seed 1 --empty     <- a second, empty company to migrate into
"""

from __future__ import annotations

import json
import sys

import typer

from .faults import FaultConfig
from .limits import RateLimitConfig
from .server import Sandbox

sandbox_app = typer.Typer(
    help="A local, spec-faithful Pipedrive API (v1 + v2) with seeded fake data.", no_args_is_help=True
)


@sandbox_app.callback()
def _group() -> None:
    """A local, spec-faithful Pipedrive API (v1 + v2) with seeded fake data."""


@sandbox_app.command(
    epilog="Example: crmsync sandbox serve --port 8765 --deals 100000 --burst 40 --error-rate 0.01\n\n"
    "Then: curl -H 'x-api-token: TOKEN' http://127.0.0.1:8765/api/v2/deals?limit=5 ; "
    "spend per client: curl http://127.0.0.1:8765/_sandbox/usage"
)
def serve(
    port: int = typer.Option(8765, help="TCP port on 127.0.0.1 (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; keep it on loopback."),
    seed: int = typer.Option(1, help="Same seed, same company, same data."),
    empty: bool = typer.Option(
        False,
        "--empty",
        help="Serve a freshly created company (users, one default pipeline, no records): a migration "
        "target. Users 2-4 share emails with users 1-3 of the seeded company of the same --seed.",
    ),
    deals: int = typer.Option(1000, help="Generated deals (1,000,000 is fine: generated lazily)."),
    leads: int | None = typer.Option(None, help="Generated leads [default: deals/5]."),
    persons: int | None = typer.Option(None, help="Generated persons [default: deals/4]."),
    orgs: int | None = typer.Option(None, help="Generated organizations [default: deals/10]."),
    burst: int = typer.Option(100, help="Requests per 2 s window per token (0: no burst limit)."),
    window: float = typer.Option(2.0, help="Burst window in seconds."),
    daily_budget: int | None = typer.Option(
        None, help="Daily token budget [default: 30,000 x 5 x seats]; 0: unlimited."
    ),
    error_rate: float = typer.Option(0.0, help="Share of requests answered 500/502/503."),
    storm_rate: float = typer.Option(0.0, help="Chance per request that a 429 storm starts."),
    storm_seconds: float = typer.Option(3.0, help="How long a 429 storm lasts."),
    slow_rate: float = typer.Option(0.0, help="Share of requests delayed by --slow-seconds."),
    slow_seconds: float = typer.Option(1.5, help="Delay of a slow response."),
    truncate_rate: float = typer.Option(0.0, help="Share of bodies cut off mid-stream."),
    invalid_json_rate: float = typer.Option(0.0, help="Share of bodies that are broken JSON."),
    null_data_rate: float = typer.Option(0.0, help='Share of answers {"success": true, "data": null}.'),
) -> None:
    """Serve until Ctrl-C. Prints the base URL and the API token on the first two lines."""
    sb = Sandbox(
        seed=seed,
        deals=deals,
        leads=leads,
        persons=persons,
        orgs=orgs,
        empty=empty,
        port=port,
        host=host,
        wait=False,
        rate_limit=RateLimitConfig(burst=burst or None, window=window, daily_budget=daily_budget),
        faults=FaultConfig(
            error_rate=error_rate,
            storm_rate=storm_rate,
            storm_seconds=storm_seconds,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            truncate_rate=truncate_rate,
            invalid_json_rate=invalid_json_rate,
            null_data_rate=null_data_rate,
        ),
    )
    sb.start()
    typer.echo(sb.base_url)
    typer.echo(sb.api_token)
    sys.stdout.flush()
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
        report = sb.usage_report()
        typer.echo("usage: " + json.dumps(report, ensure_ascii=False), err=True)
