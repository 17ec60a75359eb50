"""One error root, with subclasses grouped by what the caller should do.

Every error carries a one-line message that names the file/row/field/value and
the fix, and an ``exit_code`` the CLI returns. Library code raises these and
never prints or exits; the CLI turns them into one line on stderr.

Example::

    try:
        run_sync(config)
    except ConfigError as exc:      # fix the config, then re-run
        ...
    except RemoteError as exc:      # try again later
        ...
"""

from __future__ import annotations


class CrmsyncError(Exception):
    """Root of every error crmsync raises on purpose."""

    exit_code = 1


class ConfigError(CrmsyncError):
    """The configuration or the command line is wrong: fix it and re-run."""

    exit_code = 2


class MappingError(ConfigError):
    """A mapping file is wrong: its message names the file, entity and field."""


class InputError(CrmsyncError):
    """Input data cannot be read at all (missing file, unreadable workbook)."""

    exit_code = 3


class ValueParseError(InputError):
    """One value cannot be parsed; the row it came from goes to quarantine.

    ``reason`` is a short human sentence such as ``"not a date"``; the caller
    adds the file, row and column.
    """

    def __init__(self, reason: str, value: object = None):
        super().__init__(reason)
        self.reason = reason
        self.value = value


class RemoteError(CrmsyncError):
    """A remote API failed in a way that may pass: try again later."""

    exit_code = 4


class AuthError(ConfigError):
    """Credentials were refused: fix the token in the config or environment."""


class WarehouseError(CrmsyncError):
    """The warehouse cannot be opened or written (locked, corrupt, read-only)."""

    exit_code = 5


class BudgetExhausted(CrmsyncError):
    """A configured request/token budget stopped the run cleanly; re-run later to resume."""

    exit_code = 6


class WriteRejected(RemoteError):
    """A target CRM refused one write (bad value, permission): recorded as a rejected row; the run goes on.

    ``api_error`` is the API's own message, kept for the rejected-rows table.
    """

    def __init__(self, message: str, status: int | None = None, api_error: str = ""):
        super().__init__(message)
        self.status = status
        self.api_error = api_error or message


class WriteOutcomeUnknown(RemoteError):
    """A create may or may not have happened (timeout or server error after the body was sent).

    Never retried blindly: the push intent lets the next run find the object by its crmsync key.
    """


class RecordNotFound(RemoteError):
    """A remote API answered 404 for one record (deleted or purged since it was read)."""
