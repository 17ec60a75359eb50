"""What a connector implements so crmsync can write into its CRM.

Why an interface of its own: the push engine decides *what* to write (plans, intents, ID map,
conflicts, rollback) and never speaks HTTP; a connector only turns canonical values into its
API's bodies and back. Values are canonical field names (``title``, ``value``, ``stage_id``,
``emails`` as ``[{"value", "label", "primary"}]``, ``custom`` by human field name) with ids
already translated to the target's own ids.

Example::

    class MyTarget(Target):
        entities = ("organization", "person", "deal")
        def create(self, entity, values):
            obj = api.post(f"/{entity}s", body(values))
            return Written(str(obj["id"]), obj["update_time"])
        ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Written:
    """What a write left in the target: its id there and its ``update_time`` (ISO, UTC) right after."""

    target_id: str
    update_time: str | None = None


class Target(ABC):
    """A CRM crmsync can write to. One instance per push run; not thread-safe."""

    #: Entities this target can write, parents first (the order a migration creates them in).
    entities: ClassVar[tuple[str, ...]] = ()
    #: Name of the custom field that carries the crmsync key (``origin:entity:id``) where supported.
    key_field: ClassVar[str] = "crmsync key"

    @abstractmethod
    def cost(self, entity: str, action: str) -> tuple[int, int]:
        """(requests, tokens) one ``create``/``update``/``delete`` of ``entity`` spends."""

    @abstractmethod
    def create(self, entity: str, values: dict[str, Any]) -> Written:
        """Create one record; raises WriteRejected / WriteOutcomeUnknown / RemoteError."""

    @abstractmethod
    def update(self, entity: str, target_id: str, values: dict[str, Any]) -> Written:
        """Change only the given fields of one record."""

    @abstractmethod
    def delete(self, entity: str, target_id: str) -> None:
        """Delete one record (what the CRM calls deleting: Pipedrive keeps deals 30 days)."""

    def keyed(self, entity: str) -> bool:
        """Whether records of ``entity`` can carry the crmsync key in :attr:`key_field`."""
        return False

    def ensure_key_field(self, entity: str) -> Written | None:
        """Create the key custom field for ``entity`` if missing; returns it when created now."""
        return None

    def create_field(self, owner: str, name: str, type_: str, options: list[str]) -> Written:
        """Create a custom field on ``owner`` records; ``Written.target_id`` must let ``delete("field", id)``
        remove it again."""
        raise NotImplementedError(f"{type(self).__name__} cannot create custom fields")

    def find_notes(self, deal_target_id: str) -> list[dict[str, Any]]:
        """Notes on a target deal as ``{"id", "content"}`` (to recover an interrupted note create)."""
        return []

    def usage(self) -> dict[str, Any]:
        """Requests and tokens spent so far, for the run summary."""
        return {}
