"""Push and migrate: write normalized records back into a CRM, or into another CRM, safely.

Plan first (no request spent), apply with ``apply=True``; an ID map, intents before creates,
pre-images before updates, conflict checks on ``update_time``, and ``rollback`` of any run.
See :mod:`crmsync.push.runner` for the entry points and ``docs/push.md`` for the guarantees.
"""

from .plan import MODES, ORDER, PushSettings
from .runner import PushReport, run_push, run_rollback, sample_scope, verify_migration

__all__ = ["MODES", "ORDER", "PushReport", "PushSettings", "run_push", "run_rollback", "sample_scope",
           "verify_migration"]
