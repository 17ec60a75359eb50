"""The examples in the sandbox modules' docstrings run as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import crmsync.sandbox as pkg

MODULES = [m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in ("__main__", "cli")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"crmsync.sandbox.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
