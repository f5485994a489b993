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
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError
from .units import MiB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "GHGA_TASKS_"
MAX_BYTES = 2**63 - 1  # libcurl's curl_off_t: the largest rate it takes
DAY = 86400.0
# where a CA bundle comes from when no ca_bundle is set, as requests reads them
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

# the allowed values of each number: (lowest, highest, lowest allowed itself, unit)
RANGES = {
    "parallel": (1, 64, True, ""),
    "part_size": (MiB, MAX_BYTES, True, " bytes"),
    "max_rate": (0, MAX_BYTES, True, " bytes/s (0 = no limit)"),
    "retries": (0, 100, True, ""),
    "timeout": (0, DAY, False, " seconds"),
    "max_wait": (0, 30 * DAY, True, " seconds"),
    "retry_after_cap": (0, DAY, False, " seconds"),
    "task_retries": (0, 100, True, ""),
    "task_retry_delay": (0, DAY, True, " seconds"),
    "workers": (1, 64, True, ""),
    "connections": (1, 1024, True, ""),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    parallel: int = 4  # concurrent connections per file
    part_size: int = 64 * MiB  # download range size (uploads use the server's part size)
    max_rate: int = 0  # bytes/s for the whole file, 0 = unlimited
    state_dir: Optional[str] = None  # None = the platform's user cache dir
    retries: int = 5  # per-request retries (API calls and each part)
    timeout: float = 60.0  # connect timeout, API read timeout and stall limit (s)
    max_wait: float = 3600.0  # overall deadline for staging / acceptance (s)
    retry_after_cap: float = 300.0  # longest single wait the server may ask for (s)
    task_retries: int = 1  # re-runs of the whole DAG after a transient failure
    task_retry_delay: float = 10.0  # pause before such a re-run (s)
    partial_dir: Optional[str] = None  # None = the output dir (same filesystem: atomic move)
    preallocate: bool = True  # download: reserve the file's space first (off: sparse file)
    keep_page_cache: bool = False  # download: keep its pages cached (off: dropped behind the hash)
    ca_bundle: Optional[str] = None
    token: Optional[str] = dataclasses.field(default=None, repr=False)  # never printed
    json: bool = False
    quiet: bool = False
    workers: int = 4  # batch commands: files at once (luigi workers)
    connections: int = 16  # batch commands: connections of all files together
    scheduler_url: Optional[str] = None  # batch commands: luigid's URL (None: in-process)

    def __post_init__(self):
        for name in RANGES:
            problem = _out_of_range(name, getattr(self, name))
            if problem:
                raise ConfigError(f"invalid setting: {name} {problem}")
        if self.ca_bundle and not os.path.exists(self.ca_bundle):
            raise ConfigError(f"CA bundle not found: {self.ca_bundle}")

    @property
    def state_root(self) -> Path:
        return Path(self.state_dir) if self.state_dir else user_cache_dir()


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
TOKEN_FILE = "token_file"  # not a field: read into `token` where it is given
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(value: Any) -> int:
    """'64MiB', '10M', '1.5G' or an int → bytes (K/M/G are decimal, KiB/MiB/GiB binary)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (e.g. 64MiB, 10M, 1048576)")
    return int(Fraction(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])  # exact


class OutOfRange(ValueError):
    """A number outside the allowed values of its setting."""


def _out_of_range(name: str, value: Any) -> Optional[str]:
    """What is wrong with a number, None when it is allowed (nan and inf never are)."""
    low, high, low_allowed, unit = RANGES[name]
    if (low <= value if low_allowed else low < value) and value <= high:
        return None
    allowed = (
        f"from {_number(low)} to {_number(high)}"
        if low_allowed
        else f"more than {_number(low)} and at most {_number(high)}"
    )
    return f"must be {allowed}{unit}, not {_number(value)}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def convert(name: str, value: Any) -> Any:
    """One setting from a flag, the environment or a config file; ValueError says what is
    allowed."""
    if name == TOKEN_FILE:
        return None if value in (None, "") else str(value)
    converted = _convert(name, value)
    if name in RANGES:
        problem = _out_of_range(name, converted)
        if problem:
            raise OutOfRange(problem)
    return converted


def read_token_file(path: str) -> str:
    """The first line of a token file, without surrounding whitespace."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.readline().strip()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token


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


def _apply(values: dict, source: Mapping[str, Any], origin: str, env_names: bool = False) -> None:
    if "token" in source and TOKEN_FILE in source:
        raise ConfigError(f"{origin}: give token or token_file, not both")
    for name, raw in source.items():
        if name not in FIELDS and name != TOKEN_FILE:
            raise ConfigError(f"{origin}: unknown setting {name!r}")
        where = f" ({ENV_PREFIX}{name.upper()})" if env_names else ""
        try:
            value = convert(name, raw)
        except OutOfRange as exc:
            raise ConfigError(f"{origin}: {name}{where} {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{origin}: bad value for {name}{where}: {exc}") from None
        if name == TOKEN_FILE:
            if value is not None:
                values["token"] = read_token_file(value)
        else:
            values[name] = value


def default_config_path(env: Mapping[str, str]) -> Optional[Path]:
    """$GHGA_TASKS_CONFIG, else config.toml in the user config dir (which may not exist)."""
    if env.get("GHGA_TASKS_CONFIG"):
        return Path(env["GHGA_TASKS_CONFIG"])
    return user_config_dir() / "config.toml"


def _read_config(path: Path, optional: bool) -> Optional[dict]:
    """The TOML table of a config file; None for an optional one that is not there."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (FileNotFoundError, NotADirectoryError):
        if optional:
            return None
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _ca_bundle_from_env(env: Mapping[str, str]) -> Optional[str]:
    """The CA bundle requests would use, so that storage (pycurl) trusts the same CAs."""
    for var in CA_BUNDLE_ENV:
        if env.get(var):
            if not os.path.exists(env[var]):
                raise ConfigError(f"CA bundle not found: {env[var]} (from {var})")
            return env[var]
    return None


def load(
    config_path: Optional[str] = None, env: Optional[Mapping[str, str]] = None, **overrides: Any
) -> Settings:
    """Build Settings from defaults, a config file, the environment and explicit overrides.

    Overrides that are None are ignored, so CLI flags that were not given don't win. Without a
    ca_bundle, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is used for the API and storage alike."""
    env = os.environ if env is None else env
    values: dict = {}
    explicit = config_path or env.get("GHGA_TASKS_CONFIG")
    path = Path(config_path) if config_path else default_config_path(env)
    data = _read_config(path, optional=not explicit)
    if data is not None:
        table = data.get("ghga_tasks", data)
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [ghga_tasks] is not a table")
        _apply(values, table, f"config file {path}")
    names = list(FIELDS) + [TOKEN_FILE]
    from_env = {
        name: env[ENV_PREFIX + name.upper()] for name in names if ENV_PREFIX + name.upper() in env
    }
    _apply(values, from_env, "environment", env_names=True)
    _apply(values, {k: v for k, v in overrides.items() if v is not None}, "option")
    if not values.get("ca_bundle"):
        values["ca_bundle"] = _ca_bundle_from_env(env)
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
