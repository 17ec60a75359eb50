"""Load and validate ``crmsync`` TOML configuration.

Why a module of its own: the config is the contract with ops scripts, so the
names are fixed (``[warehouse] path``, ``[sources.<name>] type``), every
problem is reported at once as ``path.to.key: problem``, and secrets come from
the environment and never leave the process.

Example config::

    [warehouse]
    path = "crmsync.db"

    [sources.example]
    type = "spreadsheet"
    path = "examples/*.csv"
    mapping = "spreadsheet"

    [sources.pipedrive]
    type = "pipedrive"
    base_url = "https://yourcompany.pipedrive.com"
    api_token = "${PIPEDRIVE_API_TOKEN}"

Example use::

    >>> cfg = load_config("config.example.toml")          # doctest: +SKIP
    >>> cfg.warehouse.path                                  # doctest: +SKIP
    PosixPath('/abs/path/crmsync.db')

Every string value may use ``${VAR}`` to read an environment variable, and any
key can be overridden by a ``CRMSYNC_`` twin: ``CRMSYNC_SOURCES__PIPEDRIVE__API_TOKEN``
sets ``sources.pipedrive.api_token`` (double underscore between levels).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmsync.audit.settings import AuditConfig
from crmsync.errors import ConfigError

ENV_PREFIX = "CRMSYNC_"
CONFIG_ENV = "CRMSYNC_CONFIG"
DEFAULT_CONFIG = "crmsync.toml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class WarehouseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Path("crmsync.db")
    batch_size: int = Field(5000, ge=1, le=1_000_000)


class DefaultsConfig(BaseModel):
    """Defaults every source inherits unless it sets its own.

    Precedence for parse settings: the source's own key, then these, then the
    mapping file's ``[mapping]`` table, then UTC / US. Unset here means "let the
    mapping decide" (a Zoho preset knows its export's timezone better than a guess).
    """

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    phone_region: str | None = None
    default_currency: str | None = None


class ReconcileConfig(BaseModel):
    """Thresholds for inferred lead→deal links (explicit evidence never needs them)."""

    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(180, ge=0)
    min_confidence: float = Field(0.6, ge=0, le=1)


class SourceConfig(BaseModel):
    """The keys every source has; the connector validates the rest (``options``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path | None = None
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config are relative to the config file, not the shell's cwd."""
        return self.path.parent if self.path else Path.cwd()


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config to use: ``--config``, else ``$CRMSYNC_CONFIG``, else ``./crmsync.toml``."""
    candidate = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    path = Path(candidate)
    if not path.is_file():
        hint = "pass --config FILE, set CRMSYNC_CONFIG, or run `crmsync init` to write a starter config"
        raise ConfigError(f"{path}: config file not found; {hint}")
    return path


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config must be UTF-8 text") from None
    return parse_config(data, path=path, environ=environ)


def parse_config(
    data: dict[str, Any], *, path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate an already-parsed config mapping (see :func:`load_config`)."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    data = _apply_env_overrides(data, environ)
    data = _expand(data, environ, (), problems)

    raw_sources = data.pop("sources", {})
    sources: dict[str, Any] = {}
    if not isinstance(raw_sources, dict):
        problems.append("sources: must be a table of [sources.<name>] tables")
        raw_sources = {}
    for name, body in raw_sources.items():
        if not isinstance(body, dict):
            problems.append(f"sources.{name}: must be a table")
            continue
        body = dict(body)
        common = {k: body.pop(k) for k in ("type", "enabled") if k in body}
        if "type" not in common:
            problems.append(f"sources.{name}.type: missing (e.g. type = \"spreadsheet\")")
            continue
        sources[name] = {"name": name, **common, "options": body}

    try:
        config = Config.model_validate({**data, "sources": {}, "path": path})
    except ValidationError as exc:
        problems.extend(_format_errors(exc))
        config = None
    validated: dict[str, SourceConfig] = {}
    for name, body in sources.items():
        try:
            validated[name] = SourceConfig.model_validate(body)
        except ValidationError as exc:
            problems.extend(_format_errors(exc, prefix=("sources", name)))
    if problems:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "; ".join(problems))
    assert config is not None
    config.sources = validated
    if not config.warehouse.path.is_absolute():
        config.warehouse.path = config.base_dir / config.warehouse.path
    return config


def _format_errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"]))
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{loc}: {message}")
    return out


def format_validation_errors(exc: ValidationError, prefix: tuple[str, ...]) -> str:
    """One line listing every problem of a connector's options, e.g. ``sources.x.path: missing``."""
    return "; ".join(_format_errors(exc, prefix))


def _expand(value: Any, environ: Mapping[str, str], where: tuple[str, ...], problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, environ, (*where, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, (*where, str(i)), problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                problems.append(f"{'.'.join(where)}: environment variable {name} is not set")
                return ""
            return environ[name]

        return _VAR.sub(sub, value)
    return value


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``CRMSYNC_A__B__C=value`` twins; keys are matched case-insensitively."""
    data = _deepcopy(data)
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV or "__" not in var[len(ENV_PREFIX):]:
            continue
        parts = var[len(ENV_PREFIX):].lower().split("__")
        node = data
        for part in parts[:-1]:
            key = _match_key(node, part)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[_match_key(node, parts[-1])] = value
    return data


def _match_key(node: dict[str, Any], lowered: str) -> str:
    for key in node:
        if key.lower() == lowered:
            return key
    return lowered


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


STARTER_CONFIG = """\
# crmsync configuration. Relative paths are relative to this file.
# Every string may use ${VAR} to read an environment variable; any key can be
# overridden by CRMSYNC_<SECTION>__<KEY>, e.g. CRMSYNC_WAREHOUSE__PATH=/data/crm.db

[warehouse]
path = "crmsync.db"          # SQLite file, created on first run

[defaults]
timezone = "UTC"             # how naive times in exports are read
phone_region = "US"          # region for phone numbers written without +country code
# default_currency = "USD"   # for money written without a currency

[sources.spreadsheets]
type = "spreadsheet"
path = "exports/*.csv"       # a file or a glob; .csv, .tsv, .txt and .xlsx
mapping = "spreadsheet"      # a built-in preset name or a path to your own mapping TOML
"""
