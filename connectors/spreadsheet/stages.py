"""Pipelines and stages derived from the deals of an export that has no stage list of its own.

Why: a deals export names each deal's pipeline and stage but rarely ships the
stage list. Deriving it gives the warehouse a ``stages`` table with canonical
categories (and the deals a ``stage_id``) so audit and reconciliation work the
same as for an API source. Ids are the names themselves, so they are stable
across runs: pipeline ``Sales``, stage ``Sales/Proposal made``.

Example::

    >>> catalog = StageCatalog("exports")
    >>> deal = Deal(source="exports", source_id="1", title="x", pipeline_name="Sales",
    ...             stage_name="Proposal made", stage_category="proposal")
    >>> catalog.attach(deal).stage_id
    'Sales/Proposal made'
    >>> [r.source_id for r in catalog.records()]
    ['Sales', 'Sales/Proposal made']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crmsync.model import Deal, Pipeline, Record, Stage, StageCategory

DEFAULT_PIPELINE = "Default"
_ORDER = {category: i for i, category in enumerate(StageCategory, start=1)}


class StageCatalog:
    """Collects the distinct (pipeline, stage) pairs seen on deals, in order of first appearance."""

    def __init__(self, source: str):
        self.source = source
        self._stages: dict[tuple[str, str], StageCategory | None] = {}

    def attach(self, deal: Deal) -> Deal:
        """Give the deal derived ``pipeline_id``/``stage_id`` (unless the export had ids) and remember them."""
        # Plain dict writes: the values are strings the model accepts, and pydantic's __setattr__
        # costs more per row than the whole catalog (these records are not validate_assignment models).
        for name in self.attach_fields(deal.__dict__):
            deal.__pydantic_fields_set__.add(name)
        return deal

    def attach_fields(self, fields: dict[str, Any]) -> list[str]:
        """:meth:`attach` on a deal's field values (``EntityMapping.convert_stored``); returns the
        names of the fields it set."""
        stage_name = fields.get("stage_name")
        if stage_name is None:
            return []
        pipeline = fields.get("pipeline_name") or DEFAULT_PIPELINE
        key = (pipeline, stage_name)
        if self._stages.get(key) is None:
            self._stages[key] = fields.get("stage_category")
        derived = []
        if fields.get("pipeline_id") is None:
            fields["pipeline_id"] = pipeline
            derived.append("pipeline_id")
        if fields.get("stage_id") is None:
            fields["stage_id"] = f"{pipeline}/{stage_name}"
            derived.append("stage_id")
        return derived

    def records(self) -> Iterator[Record]:
        pipelines = list(dict.fromkeys(p for p, _ in self._stages))
        for position, name in enumerate(pipelines, start=1):
            yield Pipeline(source=self.source, source_id=name, name=name, position=position)
        for (pipeline, stage), category in self._stages.items():
            yield Stage(source=self.source, source_id=f"{pipeline}/{stage}", name=stage, pipeline_id=pipeline,
                        category=category, position=_ORDER.get(category) if category else None)
