"""One settings table, one precedence: command-line flag > ``FIRESIFT_*`` environment variable >
config file > default.

Each setting is declared exactly once, as a field of :class:`Settings` with its default and help
text; ``--help``, the README and a test all enumerate :data:`SETTINGS`, so documentation cannot
drift from code. The config file is TOML (``FIRESIFT_CONFIG``, else ``config.toml`` in the
per-user config directory) with the same names as keys. Bad values raise
:class:`~firesift.errors.ConfigError` naming the key, where it came from and the bad value;
secrets are masked whenever settings are shown.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from firesift.errors import ConfigError

__all__ = [
    "SETTINGS",
    "Setting",
    "Settings",
    "config_path",
    "default_db",
    "load",
    "source_tables",
]


def default_db() -> Path:
    """The per-user data directory (e.g. ``~/.local/share/firesift`` on Linux)."""
    return Path(platformdirs.user_data_dir("firesift", appauthor=False))


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if "FIRESIFT_CONFIG" in env:
        return Path(env["FIRESIFT_CONFIG"])
    return Path(platformdirs.user_config_dir("firesift", appauthor=False)) / "config.toml"


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings. Field order is the order ``firesift settings`` lists them in."""

    db: Path = field(
        default_factory=default_db,
        metadata={"help": "Data directory (store and index).", "secret": False},
    )
    batch_size: int = _setting(2000, "Posts per store transaction while ingesting.")
    refresh_ms: int = _setting(
        100, "Longest time (ms) between a post being stored and being searchable."
    )
    answer_workers: int = _setting(
        2, "Processes computing the server's chat answers (0: inside the server process)."
    )
    claims_encoder: str = _setting(
        "",
        "Also group an answer's claims by paraphrase with a sentence encoder: minilm"
        " (all-MiniLM-L6-v2 from the model package, about 0.3 s more per answer on 2 cores),"
        " or empty for words and slots only.",
    )
    host: str = _setting("127.0.0.1", "Address the API server listens on.")
    port: int = _setting(8000, "Port the API server listens on.")
    rate_limit: int = _setting(
        0,
        "Requests a minute the API server allows each API key (each client address where no"
        " key is needed); over it, 429 with retry-after. 0: no limit.",
    )
    rate_limit_burst: int = _setting(
        0, "Requests a key may send at once before rate_limit applies (0: rate_limit)."
    )
    llm_base_url: str = _setting("", "OpenAI-compatible endpoint for the llm composer.")
    llm_api_key: str = _setting("", "API key for the LLM endpoint.", secret=True)
    llm_model: str = _setting("", "Model name to ask the LLM endpoint for.")
    x_bearer_token: str = _setting(
        "", "X API bearer token for the x (filtered stream) source.", secret=True
    )
    mastodon_token: str = _setting(
        "",
        "Mastodon user access token for the mastodon source (a source's token= wins).",
        secret=True,
    )

    def shown(self) -> dict[str, str]:
        """Every setting as display text, secrets masked."""
        out: dict[str, str] = {}
        for s in SETTINGS:
            value = str(getattr(self, s.name))
            out[s.name] = "****" if s.secret and value else value
        return out


@dataclass(frozen=True, slots=True)
class Setting:
    """A row of the settings table."""

    name: str
    type: type
    help: str
    secret: bool

    @property
    def env(self) -> str:
        return "FIRESIFT_" + self.name.upper()

    def convert(self, value: object, origin: str) -> object:
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError("expected true or false")
            if self.type is int:
                if isinstance(value, bool):
                    raise ValueError("expected a whole number")
                return int(str(value))
            if self.type is Path:
                return Path(str(value)).expanduser()
            return str(value)
        except ValueError as e:
            raise ConfigError(
                f"setting {self.name} from {origin}: bad value {value!r} ({e})"
            ) from e


_TYPES = {"Path": Path, "int": int, "str": str, "bool": bool}
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, _TYPES[str(f.type)], f.metadata["help"], f.metadata["secret"])
    for f in fields(Settings)
)
_BY_NAME = {s.name: s for s in SETTINGS}
_TABLES = ("sources",)
"""Config-file keys that are tables of their own, not settings."""


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path}: {e}") from e
    unknown = sorted(set(data) - set(_BY_NAME) - set(_TABLES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(_BY_NAME)}, and [[sources]] tables"
        )
    return data


def load(
    flags: Mapping[str, object | None] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve every setting by precedence. ``flags`` maps setting names to values given on the
    command line (``None`` means "not given")."""
    env = os.environ if env is None else env
    path = config_file if config_file is not None else config_path(env)
    layers: list[tuple[str, Mapping[str, object]]] = [
        (f"config file {path}", _read_file(path)),
        ("environment", {s.name: env[s.env] for s in SETTINGS if s.env in env}),
        ("command line", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    values: dict[str, Any] = {}
    for origin, layer in layers:
        for name, raw in layer.items():
            if name in _TABLES:
                continue
            setting = _BY_NAME.get(name)
            if setting is None:
                raise ConfigError(f"unknown setting {name!r} from {origin}")
            values[name] = setting.convert(raw, origin)
    return replace(Settings(), **values)


def source_tables(
    env: Mapping[str, str] | None = None, *, config_file: Path | None = None
) -> list[tuple[Mapping[str, Any], str]]:
    """The config file's ``[[sources]]`` tables, each with where it is (for error messages).
    :meth:`firesift.sources.SourceSpec.from_table` reads one."""
    path = config_file if config_file is not None else config_path(env)
    tables = _read_file(path).get("sources", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"config file {path}: sources must be [[sources]] tables")
    return [(t, f"config file {path}, [[sources]] #{i}") for i, t in enumerate(tables, 1)]
