"""Shared fixtures: register the Pipedrive connector until its entry point lands, build configs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from crmsync.connectors.pipedrive import PipedriveSource

import crmsync.source
from crmsync.config import parse_config
from crmsync.view import StoredRecords


class _EntryPoint:
    name = "pipedrive"

    def load(self):
        return PipedriveSource


@pytest.fixture(autouse=True, scope="session")
def pipedrive_registered():
    """Make ``type = "pipedrive"`` resolve (pyproject's entry point is not installed yet)."""
    original = crmsync.source.connector_types

    def types():
        found = dict(original())
        found.setdefault("pipedrive", _EntryPoint())
        return found

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crmsync.source, "connector_types", types)
        yield


def make_config(sb, tmp_path: Path, **options):
    return parse_config({
        "warehouse": {"path": str(tmp_path / "wh.db")},
        "sources": {"pd": {"type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token, **options}},
    })


def stored(tmp_path: Path) -> StoredRecords:
    return StoredRecords(sqlite3.connect(tmp_path / "wh.db"), "pd")


def client_usage(sb) -> dict:
    """Requests/tokens the connector spent (all clients of the sandbox) and per endpoint."""
    report = sb.usage_report()["clients"]
    endpoints: dict[str, int] = {}
    for c in report:
        for name, e in c["endpoints"].items():
            endpoints[name] = endpoints.get(name, 0) + e["requests"]
    return {"requests": sum(c["requests"] for c in report), "tokens": sum(c["tokens"] for c in report),
            "endpoints": endpoints}
