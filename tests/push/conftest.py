"""Two sandbox companies (A seeded, B empty), configs naming both, and snapshots of a company over HTTP."""

from __future__ import annotations

from pathlib import Path

from crmsync.connectors.pipedrive.client import PipedriveClient
from crmsync.connectors.pipedrive.paging import v1_pages, v2_pages

from crmsync.config import parse_config
from crmsync.sandbox import Sandbox


def empty_company(seed: int = 2) -> Sandbox:
    """A company with users and a default pipeline but no deals, persons, organizations or leads."""
    return Sandbox(seed=seed, empty=True)


def make_config(tmp_path: Path, *companies: tuple[str, Sandbox], extra: dict | None = None):
    sources = {name: {"type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token, "history": name == "a"}
               for name, sb in companies}
    sources.update(extra or {})
    return parse_config({"warehouse": {"path": str(tmp_path / "wh.db")}, "sources": sources})


def snapshot(sb: Sandbox) -> dict[str, dict[str, tuple]]:
    """What a user sees in the company: live records per entity with the fields a migration carries."""
    c = PipedriveClient(sb.base_url, sb.api_token)
    out: dict[str, dict[str, tuple]] = {}
    out["deal"] = {str(d["id"]): (d["title"], d["status"], d["value"], d["currency"], d["stage_id"], d["person_id"],
                                  d["org_id"])
                   for page in v2_pages(c, "/deals", {"status": "open,won,lost"}, 500) for d in page}
    out["person"] = {str(p["id"]): (p["name"], tuple(e["value"] for e in p.get("emails") or ()), p.get("org_id"))
                     for page in v2_pages(c, "/persons", {}, 500) for p in page}
    out["organization"] = {str(o["id"]): (o["name"],) for page in v2_pages(c, "/organizations", {}, 500) for o in page}
    out["pipeline"] = {str(p["id"]): (p["name"],) for page in v2_pages(c, "/pipelines", {}, 500) for p in page
                       if not p.get("is_deleted")}
    out["stage"] = {str(s["id"]): (s["name"], s["pipeline_id"]) for page in v2_pages(c, "/stages", {}, 500)
                    for s in page if not s.get("is_deleted")}
    out["lead"] = {str(x["id"]): (x["title"],) for page in v1_pages(c, "/leads", {}, 500) for x in page}
    return out


def writes(sb: Sandbox) -> int:
    """Write requests (POST/PATCH/PUT/DELETE) the sandbox has answered so far."""
    return sum(e["requests"] for client in sb.usage_report()["clients"]
               for name, e in client["endpoints"].items() if not name.startswith("GET"))
