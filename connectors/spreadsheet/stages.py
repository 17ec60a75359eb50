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
from crmsync.warehouse import SPECS

DEFAULT_PIPELINE = "Default"
_ORDER = {category: i for i, category in enumerate(StageCategory, start=1)}
#: Where the fields the catalog reads and sets are in a deal's warehouse row.
_PIPELINE_ID, _PIPELINE_NAME, _STAGE_ID, _STAGE_NAME, _STAGE_CATEGORY = map(
    SPECS["deal"].columns.index, ("pipeline_id", "pipeline_name", "stage_id", "stage_name", "stage_category"))
assert [_PIPELINE_NAME, _STAGE_ID, _STAGE_NAME] == [_PIPELINE_ID + 1, _PIPELINE_ID + 2, _PIPELINE_ID + 3]  # adjacent


def _text(value: Any) -> str | None:
    """A warehouse row's value as text, or ``None`` for its empty-column marker."""
    return value if type(value) is str else None


class StageCatalog:
    """Collects the distinct (pipeline, stage) pairs seen on deals, in order of first appearance."""

    def __init__(self, source: str):
        self.source = source
        self._stages: dict[tuple[str, str], StageCategory | None] = {}
        #: attach_row: (pipeline id, pipeline name, stage id, stage name) -> the first three, derived.
        self._ids: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

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
        pipeline_id, stage_id, _ = self._derive(fields.get("pipeline_name"), stage_name,
                                                fields.get("stage_category"), fields.get("pipeline_id"),
                                                fields.get("stage_id"))
        derived = []
        for name, value in (("pipeline_id", pipeline_id), ("stage_id", stage_id)):
            if fields.get(name) is None:
                fields[name] = value
                derived.append(name)
        return derived

    def attach_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`attach_fields` on a deal's warehouse row (``EntityMapping.convert_cells``): the
        row with the derived ids in place. An empty column holds the warehouse's null parameter,
        never text, so "not text" is "not set" here."""
        stage_name = row[_STAGE_NAME]
        if type(stage_name) is not str:
            return row
        key = row[_PIPELINE_ID:_STAGE_NAME + 1]  # pipeline id and name, stage id and name
        ids = self._ids.get(key)
        if ids is None:
            pipeline_id, stage_id, stage = self._derive(
                _text(row[_PIPELINE_NAME]), stage_name, _text(row[_STAGE_CATEGORY]), _text(row[_PIPELINE_ID]),
                _text(row[_STAGE_ID]))
            ids = (pipeline_id, row[_PIPELINE_NAME], stage_id)
            # Remembered once the stage's category is known (nothing more to record about it).
            if self._stages[stage] is not None and len(self._ids) < 4096:
                self._ids[key] = ids
        return row[:_PIPELINE_ID] + ids + row[_STAGE_ID + 1 :]

    def _derive(self, pipeline_name: str | None, stage_name: str, category: Any, pipeline_id: str | None,
                stage_id: str | None) -> tuple[str, str, tuple[str, str]]:
        """The deal's pipeline and stage ids (the export's, else derived from the names) and its
        stage's key; the stage is remembered with the first category seen for it."""
        pipeline = pipeline_name or DEFAULT_PIPELINE
        stage = (pipeline, stage_name)
        if self._stages.get(stage) is None:
            self._stages[stage] = category
        return (pipeline if pipeline_id is None else pipeline_id,
                f"{pipeline}/{stage_name}" if stage_id is None else stage_id, stage)

    def records(self) -> Iterator[Record]:
        pipelines = list(dict.fromkeys(p for p, _ in self._stages))
        for position, name in enumerate(pipelines, start=1):
            yield Pipeline(source=self.source, source_id=name, name=name, position=position)
        for (pipeline, stage), category in self._stages.items():
            yield Stage(source=self.source, source_id=f"{pipeline}/{stage}", name=stage, pipeline_id=pipeline,
                        category=category, position=_ORDER.get(category) if category else None)
