"""Bad flags, settings and URLs: one `ghga-cli: error:` line, the documented exit code, fast.

None of these needs the live stack: they fail before any transfer, or talk to a stub."""

from __future__ import annotations

import builtins
import json
import os
import pathlib

import pytest
from click.testing import CliRunner
from helpers import api_error, cli, cli_download, cli_upload, download_args, one_line_error
from test_tls_progress import tls_stub  # noqa: F401 - the fixture

from ghga_tasks import cli as cli_module
from ghga_tasks import settings, transfer
from ghga_tasks.clients import ApiClient, DrsClient
from ghga_tasks.errors import ConfigError, UsageError

MAX_BYTES = 2**63 - 1


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """In-process loads see no config file of the user running the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


class Ran:
    """A CliRunner result shaped like a CompletedProcess."""

    def __init__(self, result):
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def run_in_process(*args: str, env: dict = None) -> Ran:
    clean = {k: None for k in os.environ if k.startswith("GHGA_TASKS_")}
    clean.update(env or {})
    return Ran(CliRunner().invoke(cli_module.main, list(args), env=clean))


def download(tmp_path, *extra: str, api_url: str = "http://127.0.0.1:9", env: dict = None):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    defaults = {"--state-dir": str(tmp_path / "s"), "--retries": "0"}
    given = [
        pair for flag, value in defaults.items() if flag not in extra for pair in (flag, value)
    ]
    env = {"GHGA_TASKS_TASK_RETRIES": "0", "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **(env or {})}
    return cli_download(api_url, "x", out, None, *given, *extra, env=env)


# 1. API URLs that are no http(s)://host[:port] URL


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "http://[::1/x",
        "http://127.0.0.1:99999/x",
        "https://:443/x",
        "http://127.0.0.1:port/x",
    ],
)
def test_api_url_without_valid_host_or_port_is_usage_error(tmp_path, url):
    one_line_error(download(tmp_path, api_url=url), 2, "API URL", repr(url))


def test_upload_api_url_without_host_is_usage_error(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"x")
    proc = cli_upload("http://", "x", src, tmp_path / "s")
    one_line_error(proc, 2, "API URL", "no host")


def test_api_url_check_in_the_client():
    with pytest.raises(UsageError, match="(?i)port"):
        ApiClient("http://127.0.0.1:99999/x", settings.Settings())
    assert (
        ApiClient(" http://[::1]:8080/ga4gh/drs/v1/ ", settings.Settings()).base
        == "http://[::1]:8080/ga4gh/drs/v1"
    )


# 2. numbers out of range: flags are usage errors, environment and config file are 78


@pytest.mark.parametrize(
    "flag,value,words",
    [
        ("--timeout", "inf", ("--timeout", "86400")),
        ("--timeout", "1e12", ("--timeout", "86400")),
        ("--timeout", "nan", ("--timeout", "86400")),
        ("--timeout", "0", ("--timeout",)),
        ("--max-wait", "inf", ("--max-wait",)),
        ("--max-rate", "99999999999999999999999", ("--max-rate", str(MAX_BYTES))),
        ("--max-rate", "9" * 400, ("--max-rate",)),
        ("--retries", "100000", ("--retries", "100")),
        ("--parallel", "0", ("--parallel", "64")),
        ("--part-size", "lots", ("--part-size", "not a size")),
    ],
)
def test_out_of_range_flags_are_usage_errors(tmp_path, flag, value, words):
    one_line_error(download(tmp_path, flag, value), 2, *words)


@pytest.mark.parametrize(
    "name,value",
    [
        ("TIMEOUT", "inf"),
        ("MAX_RATE", "1e30"),
        ("MAX_RATE", "99999999999999999999999"),
        ("MAX_WAIT", "nan"),
    ],
)
def test_out_of_range_environment_is_78(tmp_path, name, value):
    proc = download(tmp_path, env={f"GHGA_TASKS_{name}": value})
    one_line_error(proc, 78, f"GHGA_TASKS_{name}")


def test_out_of_range_config_file_is_78(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("timeout = inf\n")
    proc = download(tmp_path, "--config", str(config))
    one_line_error(proc, 78, "config file", "timeout", "86400")


def test_settings_ranges():
    for bad in (
        {"timeout": float("inf")},
        {"timeout": float("nan")},
        {"max_wait": 1e300},
        {"max_rate": 2**63},
        {"retries": 10**6},
        {"retry_after_cap": float("inf")},
        {"task_retry_delay": -1.0},
    ):
        with pytest.raises(ConfigError, match="must be"):
            settings.load(env={}, **bad)
    assert settings.load(env={}, max_rate=MAX_BYTES, timeout=86400).max_rate == MAX_BYTES
    assert settings.parse_size("9" * 400 + "GiB") > MAX_BYTES  # exact: no OverflowError
    assert settings.parse_size("99999999999999999999999") == 99999999999999999999999
    assert settings.parse_size("1.5GiB") == int(1.5 * 1024**3)


# 3. a config file that exists but cannot be read


def test_config_path_that_is_a_directory_is_78(tmp_path):
    (tmp_path / "xdg" / "ghga_tasks" / "config.toml").mkdir(parents=True)
    one_line_error(download(tmp_path), 78, "config file", "config.toml")


def test_unreadable_default_config_is_78(tmp_path, monkeypatch):
    """As if ~/.config/ghga_tasks were not readable (mode 000, another owner)."""
    config = tmp_path / "xdg" / "ghga_tasks" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("parallel = 2\n")
    real_stat, real_open = pathlib.Path.stat, builtins.open

    def stat(self, *args, **kwargs):
        if str(self) == str(config):
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    def fake_open(file, *args, **kwargs):
        if str(file) == str(config):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    monkeypatch.setattr(settings, "open", fake_open, raising=False)
    args = download_args("http://127.0.0.1:9", "x", tmp_path)
    proc = run_in_process(*args, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    one_line_error(proc, 78, "config file", "Permission denied")


# 4. click's own errors in the same one-line form


@pytest.mark.parametrize(
    "args,words",
    [
        (("--parallel", "abc"), ("--parallel", "abc")),
        (("--bogus",), ("--bogus",)),
        (("--json", "extra-argument"), ("extra-argument",)),
    ],
)
def test_click_errors_are_one_line(tmp_path, args, words):
    one_line_error(download(tmp_path, *args), 2, *words, "--help")


def test_state_dir_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(download(tmp_path, "--state-dir", str(afile)), 2, "--state-dir", "is a file")


def test_missing_option_and_unknown_command_are_one_line():
    one_line_error(
        cli("upload-by-id", "--api-url", "http://127.0.0.1:9"),
        2,
        "--file-id",
        "ghga-cli upload-by-id --help",
    )
    one_line_error(cli("no-such-command"), 2, "no-such-command")


def test_help_and_version_still_work():
    proc = cli("download-by-id", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "--token-file" in proc.stdout
    proc = cli("--version")
    assert proc.returncode == 0 and "ghga-cli" in proc.stdout


# 5. a CA bundle that is not there is a configuration error


def test_missing_ca_bundle_is_78(tmp_path):
    proc = download(tmp_path, "--ca-bundle", str(tmp_path / "no-ca.pem"))
    one_line_error(proc, 78, "CA bundle", "no-ca.pem")
    proc = download(tmp_path, env={"REQUESTS_CA_BUNDLE": str(tmp_path / "gone.pem")})
    one_line_error(proc, 78, "CA bundle", "gone.pem", "REQUESTS_CA_BUNDLE")


# 6. a rate cap below the number of connections stays a cap


def test_rate_share_never_becomes_unlimited():
    assert transfer.connections_and_rate(4, 100, 3) == (3, 1)
    assert transfer.connections_and_rate(4, 100, 1) == (1, 1)
    assert transfer.connections_and_rate(4, 100, 7) == (4, 1)
    assert transfer.connections_and_rate(4, 100, 400) == (4, 100)
    assert transfer.connections_and_rate(4, 2, 400) == (2, 200)
    assert transfer.connections_and_rate(4, 100, 0) == (4, 0)  # 0 = no cap
    for parallel in range(1, 9):
        for rate in range(1, 20):
            connections, share = transfer.connections_and_rate(parallel, 50, rate)
            assert 1 <= connections <= parallel and share >= 1
            assert connections * share <= rate


# 7. the token from a file (not visible in `ps`)


@pytest.fixture
def forbidding_api(stub):
    return stub(api_error(403, "noFileAccess", "no"))


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_token_file(forbidding_api, tmp_path, how):
    token_file = tmp_path / "token"
    token_file.write_text("  tok-from-file-123  \nsecond line\n")
    config = tmp_path / "c.toml"
    config.write_text(f"token_file = {json.dumps(str(token_file))}\n")
    extra, env = {
        "flag": (("--token-file", str(token_file)), {}),
        "env": ((), {"GHGA_TASKS_TOKEN_FILE": str(token_file)}),
        "config": (("--config", str(config)), {}),
    }[how]
    proc = download(
        tmp_path,
        *extra,
        "--verbose",
        api_url=forbidding_api.url,
        env={"GHGA_TASKS_TOKEN": "env-token", **env} if how == "flag" else env,
    )
    assert proc.returncode == 77, proc.stderr
    assert forbidding_api.requests[0][2]["Authorization"] == "Bearer tok-from-file-123"
    assert "tok-from-file" not in proc.stderr and "tok-from-file" not in proc.stdout


def test_token_from_environment_still_works(forbidding_api, tmp_path):
    proc = download(tmp_path, api_url=forbidding_api.url, env={"GHGA_TASKS_TOKEN": "envtok"})
    one_line_error(proc, 77, "noFileAccess")
    assert forbidding_api.requests[0][2]["Authorization"] == "Bearer envtok"


def test_bad_token_file_is_78(tmp_path):
    one_line_error(
        download(tmp_path, "--token-file", str(tmp_path / "none")), 78, "token file", "none"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    one_line_error(download(tmp_path, "--token-file", str(empty)), 78, "token file", "empty")
    one_line_error(download(tmp_path, "--token-file", str(tmp_path)), 78, "token file")
    both = tmp_path / "both.toml"
    both.write_text(f"token = 'a'\ntoken_file = {json.dumps(str(empty))}\n")
    one_line_error(download(tmp_path, "--config", str(both)), 78, "token", "token_file")


# 8. one trust store for the API (requests) and storage (pycurl)


def test_ca_bundle_resolved_once_for_both_clients(tmp_path, monkeypatch):
    ca, other = tmp_path / "ca.pem", tmp_path / "other.pem"
    ca.write_text("x")
    other.write_text("y")
    assert settings.load(env={"REQUESTS_CA_BUNDLE": str(ca)}).ca_bundle == str(ca)
    assert settings.load(env={"CURL_CA_BUNDLE": str(ca)}).ca_bundle == str(ca)
    assert settings.load(
        env={"REQUESTS_CA_BUNDLE": str(ca), "CURL_CA_BUNDLE": str(other)}
    ).ca_bundle == str(ca)
    assert settings.load(
        env={"REQUESTS_CA_BUNDLE": str(ca)}, ca_bundle=str(other)
    ).ca_bundle == str(other)
    assert settings.load(
        env={"REQUESTS_CA_BUNDLE": str(ca), "GHGA_TASKS_CA_BUNDLE": str(other)}
    ).ca_bundle == str(other)
    assert settings.load(env={}).ca_bundle is None

    resolved = settings.load(env={"REQUESTS_CA_BUNDLE": str(ca)})
    assert DrsClient("http://127.0.0.1:9", resolved).verify == str(ca)
    options = {}

    class Recorder:
        def setopt(self, option, value):
            options[option] = value

    monkeypatch.setattr(transfer.pycurl, "Curl", Recorder)
    transfer.Engine(resolved)._handle()
    assert options[transfer.pycurl.CAINFO] == str(ca)


def test_requests_ca_bundle_alone_trusts_api_and_storage(tls_stub, tmp_path):  # noqa: F811
    server, cert, data = tls_stub
    out = tmp_path / "out"
    out.mkdir()
    trust = {"REQUESTS_CA_BUNDLE": str(cert)}
    proc = cli_download(server.url, "x", out, tmp_path / "s", "--part-size", "1MiB", env=trust)
    assert proc.returncode == 0, proc.stderr
    assert (out / "x").read_bytes() == data
    assert any(p.startswith("/blob") for _, p, _ in server.requests)


@pytest.mark.parametrize(
    "args",
    [
        [
            "download-by-id",
            "--api-url",
            "http://127.0.0.1:9/x",
            "--file-id",
            "a",
            "--file_id",
            "b",
            "--output-dir",
            ".",
        ],
        [
            "download-by-id",
            "--api-url",
            "http://127.0.0.1:9/x",
            "--file-id=a",
            "--output-dir",
            ".",
            "--parallel",
            "2",
            "--parallel=3",
        ],
        [
            "upload-by-id",
            "--api_url",
            "http://127.0.0.1:9/x",
            "--api-url",
            "http://127.0.0.1:9/y",
            "--file-id",
            "a",
            "--file-path",
            "x",
        ],
    ],
)
def test_an_option_given_twice_is_a_usage_error(args):
    """click keeps the last value silently: a second --file-id is not a second file."""
    one_line_error(cli(*args), 2, "was given more than once")


@pytest.mark.parametrize("command", [[], ["upload-by-id"], ["download-by-id"]])
def test_help_ends_with_the_exit_codes(command):
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("Exit codes:")[1]
    for code in ("0", "1", "2", "65", "66", "69", "73", "75", "77", "78", "130"):
        assert f"\n  {code:>5}  " in table or f" {code}  " in table, table
