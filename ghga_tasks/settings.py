"""One frozen settings object, passed in explicitly.

Precedence, lowest first: defaults < config file (TOML) < environment (GHGA_TASKS_*) < flags.
The config file is `--config PATH`, else $GHGA_TASKS_CONFIG, else `config.toml` in the user
config dir (e.g. ~/.config/ghga_tasks/config.toml) when it exists.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MiB = 1024 * 1024
ENV_PREFIX = "GHGA_TASKS_"


@dataclasses.dataclass(frozen=True)
class Settings:
    parallel: int = 4                 # concurrent connections per file
    part_size: int = 64 * MiB         # download range size (uploads use the server's part size)
    max_rate: int = 0                 # bytes/s for the whole file, 0 = unlimited
    state_dir: Optional[str] = None   # None = the platform's user cache dir
    retries: int = 5                  # per-request retries (API calls and each part)
    timeout: float = 60.0             # connect timeout, API read timeout and stall limit (s)
    max_wait: float = 3600.0          # overall deadline for staging / acceptance (s)
    retry_after_cap: float = 300.0    # longest single wait the server may ask for (s)
    task_retries: int = 1             # re-runs of the whole DAG after a transient failure
    task_retry_delay: float = 10.0    # pause before such a re-run (s)
    partial_dir: Optional[str] = None  # None = the output dir (same filesystem: atomic move)
    overwrite: bool = False
    wait: bool = False                # upload: wait until the server accepted the file
    ca_bundle: Optional[str] = None
    token: Optional[str] = None
    json: bool = False
    quiet: bool = False

    def __post_init__(self):
        checks = [
            (self.parallel >= 1 and self.parallel <= 64, "parallel must be 1..64"),
            (self.part_size >= 1 * MiB, "part_size must be at least 1 MiB"),
            (self.max_rate >= 0, "max_rate must be >= 0"),
            (self.retries >= 0, "retries must be >= 0"),
            (self.timeout > 0, "timeout must be > 0"),
            (self.max_wait >= 0, "max_wait must be >= 0"),
            (self.retry_after_cap > 0, "retry_after_cap must be > 0"),
            (self.task_retries >= 0, "task_retries must be >= 0"),
            (self.task_retry_delay >= 0, "task_retry_delay must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid setting: {message}")
        if self.ca_bundle and not os.path.exists(self.ca_bundle):
            raise ConfigError(f"CA bundle not found: {self.ca_bundle}")

    @property
    def state_root(self) -> Path:
        return Path(self.state_dir) if self.state_dir else user_cache_dir()


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
               "tb": 1000**4, "tib": 1024**4}


def parse_size(value: Any) -> int:
    """'64MiB', '10M', '1.5G' or an int → bytes (K/M/G are decimal, KiB/MiB/GiB binary)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (e.g. 64MiB, 10M, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _convert(name: str, value: Any) -> Any:
    kind = FIELDS[name].type
    if name in ("part_size", "max_rate"):
        return parse_size(value)
    if kind in ("int",):
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        return int(value)
    if kind in ("float",):
        return float(value)
    if kind in ("bool",):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError("expected true or false")
    return None if value in (None, "") else str(value)


def _apply(values: dict, source: Mapping[str, Any], origin: str) -> None:
    for name, raw in source.items():
        if name not in FIELDS:
            raise ConfigError(f"{origin}: unknown setting {name!r}")
        try:
            values[name] = _convert(name, raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: bad value for {name}: {exc}") from None


def default_config_path(env: Mapping[str, str]) -> Optional[Path]:
    if env.get("GHGA_TASKS_CONFIG"):
        return Path(env["GHGA_TASKS_CONFIG"])
    path = user_config_dir() / "config.toml"
    return path if path.is_file() else None


def load(config_path: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
         **overrides: Any) -> Settings:
    """Build Settings from defaults, a config file, the environment and explicit overrides.

    Overrides that are None are ignored, so CLI flags that were not given don't win."""
    env = os.environ if env is None else env
    values: dict = {}
    path = Path(config_path) if config_path else default_config_path(env)
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        _apply(values, data.get("ghga_tasks", data), f"config file {path}")
    from_env = {name: env[ENV_PREFIX + name.upper()] for name in FIELDS
                if ENV_PREFIX + name.upper() in env}
    _apply(values, from_env, "environment")
    _apply(values, {k: v for k, v in overrides.items() if v is not None}, "option")
    return Settings(**values)


def user_cache_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ghga_tasks" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ghga_tasks"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ghga_tasks"


def user_config_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "ghga_tasks"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "ghga_tasks"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ghga_tasks"
