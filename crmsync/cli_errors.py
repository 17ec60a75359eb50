"""How every crmsync command reports a failure: one unwrapped line on stderr and an exit code.

Shared by the main CLI and the commands mounted into it (``audit``), so the promise "one line
naming what and where, the traceback only with --debug" is kept in one place.

Example::

    try:
        ...
    except Exception as exc:
        raise fail(exc, debug) from None
"""

from __future__ import annotations

import sys
import traceback

import typer

from crmsync.errors import CrmsyncError


def say(message: str) -> None:
    """One unwrapped line on stderr (rich would wrap it at the terminal width)."""
    sys.stderr.write(message.replace("\n", " ") + "\n")


def fail(exc: BaseException, debug: bool) -> typer.Exit:
    """Report ``exc`` and return the ``typer.Exit`` carrying its documented exit code."""
    if debug:
        sys.stderr.write(traceback.format_exc())
    if isinstance(exc, CrmsyncError):
        say(f"crmsync: error: {exc}")
        return typer.Exit(exc.exit_code)
    say(f"crmsync: unexpected error: {type(exc).__name__}: {exc} (re-run with --debug and report it)")
    return typer.Exit(1)
