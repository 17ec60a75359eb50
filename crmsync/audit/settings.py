"""Audit settings: thresholds and severities (``[audit]`` in the config) and the report's filters.

Every threshold has a default that follows common RevOps practice, so an empty
``[audit]`` table (or none) gives a useful report. Example::

    [audit]
    stale_days = 45                    # open deals not updated for 45+ days
    lead_aging_days = 21
    default_rotten_days = 30           # for stages whose CRM sets no rotten_days
    max_records = 50                   # offending records listed per check
    severity = { deal_without_lead = "warning" }
    disabled = ["probability_mismatch"]
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync.errors import ConfigError


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class AuditConfig(BaseModel):
    """Thresholds of the audit checks (``[audit]`` table). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    stale_days: int = Field(30, ge=1, description="open deal with no update for this many days")
    past_close_grace_days: int = Field(0, ge=0, description="days after the expected close date before flagging")
    close_date_pushes: int = Field(2, ge=1, description="times the close date was moved later")
    skipped_stages: int = Field(2, ge=1, description="intermediate stages jumped over in one move")
    default_rotten_days: int | None = Field(
        None, ge=1, description="rotting limit for stages whose CRM sets no rotten_days (None: only those that do)")
    lead_aging_days: int = Field(30, ge=1, description="open lead with no update for this many days")
    probability_tolerance: float = Field(
        10.0, ge=0, le=100, description="allowed difference (percentage points) between deal and stage probability")
    fuzzy_min_score: float = Field(0.9, ge=0, le=1, description="lowest fuzzy-name score reported as a duplicate")
    include_cross_source: bool = Field(
        False, description="also report identity links between two sources as duplicates")
    quarantine_max_rows: int = Field(0, ge=0, description="quarantined rows per source tolerated in the last run")
    max_records: int = Field(20, ge=0, le=10_000, description="offending records listed per check")
    severity: dict[str, Severity] = Field(default_factory=dict, description="override a check's severity")
    disabled: list[str] = Field(default_factory=list, description="checks not to run")

    @field_validator("severity", "disabled")
    @classmethod
    def _known_checks(cls, value: Any) -> Any:
        from crmsync.audit.checks import CHECK_IDS

        unknown = sorted(set(value) - set(CHECK_IDS))
        if unknown:
            raise ValueError(f"unknown check id(s) {', '.join(unknown)}; known: {', '.join(CHECK_IDS)}")
        return value


def audit_config_from(config: Any) -> AuditConfig:
    """The :class:`AuditConfig` of a loaded :class:`crmsync.config.Config` (defaults until it has ``audit``)."""
    raw = getattr(config, "audit", None) if config is not None else None
    if raw is None:
        return AuditConfig()
    if isinstance(raw, AuditConfig):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    try:
        return AuditConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"audit.{'.'.join(str(p) for p in e['loc'])}: "
                             f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
                             for e in exc.errors())
        raise ConfigError(problems) from None


@dataclass(frozen=True)
class Filters:
    """What the report looks at. ``since``/``until`` are inclusive dates; ``as_of`` is "now" for ages."""

    as_of: datetime
    since: date | None = None
    until: date | None = None
    pipeline: str | None = None

    @classmethod
    def make(cls, *, as_of: date | datetime | str | None = None, period: str | None = None,
             since: date | str | None = None, until: date | str | None = None,
             pipeline: str | None = None) -> Filters:
        """Build filters from user input; raise :class:`ConfigError` naming the bad option."""
        when = _as_of(as_of)
        start, end = parse_period(period) if period else (None, None)
        start = _date("--since", since) if since is not None else start
        end = _date("--until", until) if until is not None else end
        if start and end and start > end:
            raise ConfigError(f"period: start {start} is after end {end}")
        return cls(as_of=when, since=start, until=end, pipeline=pipeline or None)

    @property
    def as_of_iso(self) -> str:
        return self.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")

    def cutoff(self, days: float) -> str:
        """``as_of`` minus ``days``, as stored text (ISO-8601 UTC), for string comparison in SQL."""
        return (self.as_of - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def params(self) -> dict[str, Any]:
        """Named SQL parameters: ``:since``/``:until`` bound ISO texts (``until`` exclusive), ``:pipeline``."""
        return {
            "as_of": self.as_of_iso,
            "as_of_date": self.as_of.date().isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "until": (self.until + timedelta(days=1)).isoformat() if self.until else None,
            "pipeline": self.pipeline,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of_iso, "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "pipeline": self.pipeline}


_PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(\d{2})))?$")


def parse_period(text: str) -> tuple[date, date]:
    """``2025``, ``2025-Q2``, ``2025-03`` or ``2025-01-01..2025-03-31`` -> (first day, last day).

    >>> parse_period("2025-Q2")
    (datetime.date(2025, 4, 1), datetime.date(2025, 6, 30))
    >>> parse_period("2025-02")
    (datetime.date(2025, 2, 1), datetime.date(2025, 2, 28))
    """
    text = text.strip()
    if ".." in text:
        left, right = text.split("..", 1)
        return _date("--period", left), _date("--period", right)
    match = _PERIOD.match(text)
    if not match:
        raise ConfigError(f"--period: {text!r} is not a period; use 2025, 2025-Q2, 2025-03 or 2025-01-01..2025-03-31")
    year, quarter, month = int(match.group(1)), match.group(2), match.group(3)
    if quarter:
        first = 3 * (int(quarter) - 1) + 1
        return date(year, first, 1), date(year, first + 2, calendar.monthrange(year, first + 2)[1])
    if month:
        m = int(month)
        if not 1 <= m <= 12:
            raise ConfigError(f"--period: month {m} out of range in {text!r}")
        return date(year, m, 1), date(year, m, calendar.monthrange(year, m)[1])
    return date(year, 1, 1), date(year, 12, 31)


def _date(option: str, value: date | str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def _as_of(value: date | datetime | str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--as-of: {value!r} is not a date or time (YYYY-MM-DD)") from None
    return _as_of(parsed)
