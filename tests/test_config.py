from __future__ import annotations

from pathlib import Path

import pytest

from firesift.config import SETTINGS, Settings, default_db, load
from firesift.errors import ConfigError


def test_default_db_is_per_user_data_dir(tmp_path: Path) -> None:
    settings = load(env={}, config_file=tmp_path / "missing.toml")
    assert settings.db == default_db()
    assert "firesift" in str(settings.db)


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('db = "/from/file"\nport = 9001\nbatch_size = 10\n')
    env = {"FIRESIFT_DB": "/from/env", "FIRESIFT_PORT": "9002"}
    s = load({"db": "/from/flag", "port": None}, env=env, config_file=cfg)
    assert s.db == Path("/from/flag")
    assert s.port == 9002
    assert s.batch_size == 10
    assert s.refresh_ms == Settings().refresh_ms


def test_bad_value_names_key_origin_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"port from environment: bad value 'abc'"):
        load(env={"FIRESIFT_PORT": "abc"}, config_file=tmp_path / "none.toml")


def test_unknown_key_in_file_lists_known(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("dbb = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*dbb.*known: db"):
        load(env={}, config_file=cfg)


def test_config_file_found_through_env(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("llm_model = 'grok-4'\n")
    assert load(env={"FIRESIFT_CONFIG": str(cfg)}).llm_model == "grok-4"


def test_secrets_masked_and_every_setting_documented() -> None:
    s = load({"llm_api_key": "sk-secret"}, env={})
    shown = s.shown()
    assert shown["llm_api_key"] == "****"
    assert "sk-secret" not in str(shown)
    assert set(shown) == {x.name for x in SETTINGS}
    for setting in SETTINGS:
        assert setting.help.endswith(".")
        assert setting.env == "FIRESIFT_" + setting.name.upper()
