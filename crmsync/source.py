"""What a connector implements, and how crmsync finds connectors.

Why a stream of items: a source yields records, quarantined rows and
checkpoints in the order it reads them, and the runner commits them in
batches. A :class:`Checkpoint` is only written after every item before it is
committed, so a cursor can never run ahead of unwritten data.

Connectors register under the ``crmsync.connectors`` entry-point group, so a
third-party package can add one::

    [project.entry-points."crmsync.connectors"]
    mycrm = "mycrm_crmsync:MyCrmSource"

Example connector::

    class MyCrmSource(Source):
        class Options(BaseModel):
            url: str

        def read(self):
            yield Deal(source=self.name, source_id="1", title="First")
            yield Checkpoint("deals", "2026-01-01T00:00:00Z")
            yield EntityComplete("deal")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from crmsync.config import Config, SourceConfig, format_validation_errors
from crmsync.errors import ConfigError
from crmsync.model import Record
from crmsync.view import StoredRecords
from crmsync.warehouse import SPECS, QuarantineRow

ENTRY_POINT_GROUP = "crmsync.connectors"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Save ``value`` as the cursor of ``stream`` once everything read before it is committed."""

    stream: str
    value: str


@dataclass(frozen=True, slots=True)
class EntityComplete:
    """The source has yielded *all* current records of ``entity`` (a full snapshot).

    The runner then marks records it did not see in this run as removed.
    Incremental reads must not send it.
    """

    entity: str


@dataclass(slots=True)
class Notice:
    """Something the user should know that is not a bad row (unmapped stage, ignored file)."""

    kind: str
    message: str
    count: int = 1


@dataclass(slots=True)
class PreparedRows:
    """Records of one entity, in read order, already as the warehouse writes them: one
    ``(TableSpec.unfinished params, origin)`` row per record (see :meth:`Source.read_prepared`).
    ``origin`` is the record's (a dict, or ``None``), or for a spreadsheet row ``(file, sheet, line)``:
    cheaper to send than a dict per row.

    With ``raw_columns``, each row's ``raw`` may be the tuple of its cells under those headers, turned
    into JSON by whichever process finishes the row (``warehouse.raw_json``, ``warehouse.finish_row``):
    the cheapest form to send from a reader process.
    """

    entity: str
    rows: list[tuple[tuple[Any, ...], dict[str, Any] | tuple[str, str | None, int] | None]]
    raw_columns: tuple[str, ...] | None = None


Item = Record | QuarantineRow | Checkpoint | EntityComplete | Notice


@dataclass
class SourceContext:
    """What a connector may know about its surroundings.

    ``cursors`` are this source's committed cursors (stream -> value); ``stored``
    reads what the warehouse already holds for this source (read-only).
    """

    config: Config
    base_dir: Path
    cursors: dict[str, str] = field(default_factory=dict)
    stored: StoredRecords | None = None


class Source(ABC):
    """Base class of every connector that reads into the canonical model."""

    #: Pydantic model validating this connector's keys of ``[sources.<name>]``.
    Options: ClassVar[type[BaseModel]]
    #: Records per :class:`PreparedRows` (also per message from a reader process: a few hundred KiB).
    prepared_rows: ClassVar[int] = 1000

    def __init__(self, name: str, options: BaseModel, context: SourceContext):
        self.name = name
        self.options = options
        self.context = context

    @classmethod
    def parse_options(cls, source: SourceConfig) -> BaseModel:
        """Validate ``[sources.<name>]``; every problem at once, as ``sources.<name>.key: problem``."""
        try:
            return cls.Options.model_validate(source.options)
        except ValidationError as exc:
            raise ConfigError(format_validation_errors(exc, ("sources", source.name))) from None

    @classmethod
    def from_config(cls, source: SourceConfig, context: SourceContext) -> Source:
        return cls(source.name, cls.parse_options(source), context)

    @abstractmethod
    def read(self) -> Iterator[Item]:
        """Yield records, quarantined rows, checkpoints and notices, streaming."""

    def read_prepared(self) -> Iterator[Item | PreparedRows]:
        """:meth:`read` with runs of records of one entity turned into :class:`PreparedRows`, in
        the same order. What the runner consumes.

        Why: the warehouse row is what a record is read for; a connector that can produce it
        without building record objects (the spreadsheet source) overrides this and skips that cost.
        """
        return prepare_records(self.read(), self.prepared_rows)

    @classmethod
    def estimate(cls, source: SourceConfig, context: SourceContext) -> dict[str, Any] | None:
        """What the next run will spend before spending it, for ``crmsync sync --estimate``.

        API connectors return ``{"requests": int, "tokens": int, "lines": [{"endpoint", "requests",
        "tokens", "note"}], "notes": [str]}``; sources that cost nothing (files) return ``None``.
        """
        return None


def prepare_records(items: Iterable[Item | PreparedRows], size: int) -> Iterator[Item | PreparedRows]:
    """Runs of records of one entity as :class:`PreparedRows` of up to ``size`` rows, in order;
    everything else (already prepared rows included) passes through.

    >>> from crmsync.model import Pipeline
    >>> items = [Notice("x", "y"), Pipeline(source="s", source_id="1", name="Sales")]
    >>> [type(i).__name__ for i in prepare_records(items, 1000)]
    ['Notice', 'PreparedRows']
    """
    rows: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = []
    entity = ""
    unfinished: Any = None
    for item in items:
        if isinstance(item, Record):
            if item.entity != entity or len(rows) >= size:
                if rows:
                    yield PreparedRows(entity, rows)
                    rows = []
                entity = item.entity
                unfinished = SPECS[entity].unfinished()
            rows.append((unfinished(item.__dict__), item.origin))
            continue
        if rows:
            yield PreparedRows(entity, rows)
            rows = []
        yield item
    if rows:
        yield PreparedRows(entity, rows)


class StrictOptions(BaseModel):
    """Base for connector options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def connector_types() -> dict[str, Any]:
    """Installed connectors by ``type`` name (entry points, loaded lazily)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_connector(type_name: str, where: str) -> type[Source]:
    available = connector_types()
    if type_name not in available:
        names = ", ".join(sorted(available)) or "none installed"
        raise ConfigError(f"{where}.type: unknown source type {type_name!r} (available: {names})")
    cls = available[type_name].load()
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise ConfigError(f"{where}.type: connector {type_name!r} does not provide a crmsync Source")
    return cls
