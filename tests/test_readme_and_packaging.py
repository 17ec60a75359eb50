"""The README's commands work as written, and the package installs without generic top-level names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def first_screen_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_first_screen_has_the_run_command_and_the_test_command():
    run, test = first_screen_commands()
    assert run == "pip install -e . && crmsync sync --config config.example.toml"
    assert test == "pip install -e '.[test]' && pytest"
    assert README.index("```bash") < 1200  # on the first screen


def test_every_crmsync_command_in_the_readme_and_docs_parses_with_its_options():
    """A renamed command or option fails here, not in a user's terminal (parsed, not run)."""
    import shlex

    import typer.main

    from crmsync.cli import app

    group = typer.main.get_command(app)
    lines = [m.group(1) for doc in (README, (ROOT / "docs" / "push.md").read_text(encoding="utf-8"))
             for block in re.findall(r"```bash\n(.*?)```", doc, re.S)
             for m in re.finditer(r"^(crmsync [^#\n]*)", block, re.M)]
    assert len(lines) > 15
    for line in lines:
        args = shlex.split(line.split("&&")[0].split("|")[0])[1:]
        ctx = group.make_context("crmsync", list(args), resilient_parsing=False)
        name, command, rest = group.resolve_command(ctx, [*getattr(ctx, "_protected_args", []), *ctx.args])
        while hasattr(command, "resolve_command"):  # a sub-group such as `sandbox`
            sub = command.make_context(name, rest, parent=ctx)
            name, command, rest = command.resolve_command(sub, [*getattr(sub, "_protected_args", []), *sub.args])
            ctx = sub
        command.make_context(name, rest, parent=ctx)


def test_ci_runs_exactly_the_readme_test_command_in_a_fresh_venv():
    script = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in script
    assert first_screen_commands()[1] in script.splitlines()


def test_readme_main_command_loads_the_shipped_examples(tmp_path):
    shutil.copy(ROOT / "config.example.toml", tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    command = first_screen_commands()[0].split("&&")[1].split()  # the install half already ran
    crmsync = Path(sys.executable).with_name("crmsync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")}
    first = subprocess.run([str(crmsync), *command[1:], "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (tmp_path / "crmsync.db").exists()
    inserted = {}
    for e in summary["entities"]:
        inserted[e["source"]] = inserted.get(e["source"], 0) + e["inserted"]
    assert inserted["examples"] > 50 and inserted["pipedrive_sandbox"] > 300  # spreadsheets and the API path
    again = json.loads(subprocess.run([str(crmsync), *command[1:], "--json"], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=120, check=True).stdout)
    assert again["totals"]["inserted"] == again["totals"]["updated"] == 0
    # The spreadsheets are re-read whole (all unchanged); the API source reads only what changed: nothing.
    unchanged = sum(e["unchanged"] for e in again["entities"] if e["source"] == "examples")
    assert unchanged == inserted["examples"]
    pipedrive_notes = [n["message"] for s in again["sources"] if s["name"] == "pipedrive_sandbox" for n in s["notices"]]
    assert any("14 requests" in m for m in pipedrive_notes), pipedrive_notes


def test_explicit_package_list_names_every_package_in_the_tree():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup = pyproject["tool"]["setuptools"]
    listed = set(setup["packages"])
    dirs = {v: k for k, v in setup["package-dir"].items()}
    found = set()
    for top, package in dirs.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((package, *rel)))
    assert found == listed


def test_installed_names_are_crmsync_subpackages_not_generic_top_level_ones():
    probe = "import importlib.util as u; print(u.find_spec('connectors'), u.find_spec('mappings'))"
    out = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]
    import crmsync.connectors.spreadsheet  # noqa: F401

    from crmsync.mapping import builtin_mappings
    from crmsync.source import connector_types

    assert "spreadsheet" in builtin_mappings()
    assert "spreadsheet" in connector_types()


@pytest.mark.slow
def test_wheel_ships_connectors_and_mappings_inside_crmsync(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("crmsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "crmsync/connectors/spreadsheet/reader.py" in names
    assert "crmsync/mappings/spreadsheet.toml" in names
    tops = {n.split("/")[0] for n in names}
    assert not {"connectors", "mappings", "tests", "examples", "bench"} & tops
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[crmsync.connectors]" in text and "spreadsheet = crmsync.connectors.spreadsheet:SpreadsheetSource" in text
