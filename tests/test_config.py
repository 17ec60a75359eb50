"""Config loading: fixed names, all problems at once, secrets from the environment."""

from pathlib import Path

import pytest

from crmsync.config import find_config, load_config, parse_config
from crmsync.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads_and_points_at_shipped_examples():
    cfg = load_config(ROOT / "config.example.toml", environ={})
    assert cfg.warehouse.path == ROOT / "crmsync.db"
    src = cfg.sources["examples"]
    assert src.type == "spreadsheet"
    assert src.options["mapping"] == "spreadsheet"


def test_relative_warehouse_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    conf = tmp_path / "sub" / "c.toml"
    conf.write_text('[warehouse]\npath = "data/w.db"\n')
    assert load_config(conf, environ={}).warehouse.path == tmp_path / "sub" / "data" / "w.db"


def test_every_bad_key_is_reported_at_once_with_its_path():
    data = {
        "warehouse": {"path": "x.db", "batchsize": 10},
        "defaults": {"timezone": "UTC", "colour": "red"},
        "sources": {"a": {"path": "x.csv"}, "b": {"type": "spreadsheet", "enabled": "maybe"}},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    message = str(info.value)
    assert "warehouse.batchsize: unknown key" in message
    assert "defaults.colour: unknown key" in message
    assert "sources.a.type: missing" in message
    assert "sources.b.enabled:" in message


def test_env_var_expansion_fills_secrets_and_missing_vars_are_named():
    data = {"sources": {"pd": {"type": "pipedrive", "api_token": "${PD_TOKEN}"}}}
    cfg = parse_config(data, environ={"PD_TOKEN": "s3cret"})
    assert cfg.sources["pd"].options["api_token"] == "s3cret"
    with pytest.raises(ConfigError, match=r"sources\.pd\.api_token: environment variable PD_TOKEN is not set"):
        parse_config(data, environ={})


def test_crmsync_twin_variables_override_config_keys_case_insensitively():
    data = {"warehouse": {"path": "a.db"}, "sources": {"Pd": {"type": "pipedrive", "api_token": "x"}}}
    cfg = parse_config(
        data,
        environ={"CRMSYNC_WAREHOUSE__PATH": "/tmp/b.db", "CRMSYNC_SOURCES__PD__API_TOKEN": "from-env"},
    )
    assert cfg.warehouse.path == Path("/tmp/b.db")
    assert cfg.sources["Pd"].options["api_token"] == "from-env"


def test_secret_values_never_appear_in_config_errors():
    data = {"warehouse": {"batch_size": "lots"}, "sources": {"pd": {"type": "pipedrive", "api_token": "${T}"}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={"T": "tok-abc123"})
    assert "tok-abc123" not in str(info.value)


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[warehouse\npath = 1")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_find_config_prefers_flag_then_environment(tmp_path, monkeypatch):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("")
    b.write_text("")
    monkeypatch.setenv("CRMSYNC_CONFIG", str(b))
    assert find_config(a) == a
    assert find_config(None) == b
    monkeypatch.delenv("CRMSYNC_CONFIG")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="crmsync init"):
        find_config(None)
