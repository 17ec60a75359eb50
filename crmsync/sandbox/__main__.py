"""``python -m crmsync.sandbox serve ...`` (same as ``crmsync sandbox serve ...``)."""

from .cli import sandbox_app

sandbox_app(prog_name="python -m crmsync.sandbox")
