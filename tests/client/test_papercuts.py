"""First-use papercuts (issue 11): retries say what they wait for, the progress bar fits the
terminal, callback errors stay with their engine, the demo maps a bad --work-dir to 73."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import socket
import sys
import threading

import pycurl
import pytest
from helpers import cli, cli_download, cli_upload, one_line_error

from ghga_tasks.parts import Part
from ghga_tasks.progress import BarLogHandler, ProgressBar
from ghga_tasks.settings import Settings
from ghga_tasks.transfer import Engine, Outcome, Strategy

NO_TASK_RETRY = {"GHGA_TASKS_TASK_RETRIES": "0"}
JSON_TYPE = {"Content-Type": "application/json"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def retry_notices_then_error(proc, code: int, *words: str) -> list:
    """Exit `code`; every stderr line but the last is a retry notice, the last is the one
    error line, naming `words`. Returns the notices."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ghga-cli: error: "), proc.stderr
    assert sum(line.startswith("ghga-cli: error:") for line in lines) == 1, proc.stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    notices = lines[:-1]
    for line in notices:
        assert re.search(r"; retry \d+ of \d+ in \d+\.\d s( \(Retry-After\))?$", line), line
    return notices


# --- retries say on stderr what they wait for and how long ---------------------------------


@pytest.mark.parametrize("quiet", [(), ("--quiet",)], ids=["default", "quiet"])
def test_unreachable_api_says_each_wait(tmp_path, quiet):
    """--retries 2 against a closed port: two notices (which call, why, which retry of how
    many, how long), then the error as the last line; --quiet keeps the notices."""
    src = tmp_path / "src"
    src.write_bytes(b"0123456789")
    port = closed_port()
    api = f"http://127.0.0.1:{port}/upload"
    proc = cli_upload(api, "F1", src, tmp_path / "s", "--retries", "2", *quiet, env=NO_TASK_RETRY)
    notices = retry_notices_then_error(proc, 75, "cannot reach the API", "(after 3 attempts)")
    assert len(notices) == 2, proc.stderr
    for number, line in enumerate(notices, 1):
        assert re.fullmatch(
            rf"ghga-cli: API GET http://127\.0\.0\.1:{port}/upload/files/F1: "
            rf"connection refused; retry {number} of 2 in \d+\.\d s",
            line,
        ), line


def test_storage_and_api_retries_say_each_wait_without_the_signature(stub, tmp_path):
    """An API 503 with Retry-After and storage answering 503: each wait is one notice, the
    pre-signed URL's query string appears nowhere."""
    data = b"x" * 1000
    calls = {"objects": 0}

    def handler(method, path, headers):
        if path.startswith("/objects/"):
            calls["objects"] += 1
            if calls["objects"] == 1:
                return 503, {"Retry-After": "0"}, b""
            obj = {
                "id": "x",
                "size": len(data),
                "checksums": [{"type": "sha-256", "checksum": hashlib.sha256(data).hexdigest()}],
                "access_methods": [
                    {"type": "s3", "access_url": {"url": f"{srv.url}/data?X-Amz-Signature=s3cr3t"}}
                ],
            }
            return 200, JSON_TYPE, json.dumps(obj).encode()
        return 503, {}, b"busy"

    srv = stub(handler)
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(srv.url, "x", out, tmp_path / "s", "--retries", "1", env=NO_TASK_RETRY)
    notices = retry_notices_then_error(proc, 75)
    assert any(
        re.fullmatch(
            rf"ghga-cli: API GET {re.escape(srv.url)}/objects/x: HTTP 503; "
            r"retry 1 of 1 in \d+\.\d s \(Retry-After\)",
            line,
        )
        for line in notices
    ), proc.stderr
    assert any(
        re.fullmatch(
            r"ghga-cli: storage, download of bytes 0-999: HTTP 503; "
            r"retry 1 of 1 in \d+\.\d s",
            line,
        )
        for line in notices
    ), proc.stderr
    assert "s3cr3t" not in proc.stderr


# --- the progress bar fits the terminal ----------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drawn_lines(text: str) -> list:
    """What each redraw put on the line: the text between carriage returns."""
    return [part for part in text.split("\r") if part]


@pytest.mark.parametrize("columns", [80, 40, 12])
def test_progress_bar_fits_the_terminal_width(columns):
    tty, clock = FakeTty(), FakeClock()
    bar = ProgressBar(
        "download a-file-id-of-some-length-0123456789",
        stream=tty,
        columns=lambda: columns,
        clock=clock,
    )
    for done in range(0, 2 * 1024**3, 256 * 1024**2):
        clock.now += 1.0
        bar(done, 2 * 1024**3, "download")
    text = tty.getvalue()
    assert "\n" not in text  # every redraw stays on one line
    lines = drawn_lines(text)
    assert len(lines) == 8
    assert all(len(line) <= columns - 1 for line in lines), lines
    if columns == 80:  # the label goes before the figures do
        assert "%" in lines[-1] and "ETA" in lines[-1], lines[-1]
    bar.close()
    assert tty.getvalue().endswith("\n")


def test_progress_bar_follows_a_resized_terminal():
    tty, clock = FakeTty(), FakeClock()
    width = {"columns": 120}
    bar = ProgressBar("upload F", stream=tty, columns=lambda: width["columns"], clock=clock)
    bar(1, 100, "upload")
    width["columns"] = 30
    clock.now += 1.0
    bar(2, 100, "upload")
    first, second = drawn_lines(tty.getvalue())
    assert "upload F: upload" in first and len(first) <= 119
    assert len(second) <= 29


def test_a_log_line_clears_the_bar_and_the_bar_comes_back():
    tty, clock = FakeTty(), FakeClock()
    bar = ProgressBar("download F", stream=tty, columns=lambda: 100, clock=clock)
    handler = BarLogHandler(tty)
    handler.setFormatter(logging.Formatter("ghga-cli: %(message)s"))
    handler.bar = bar
    bar(10, 100, "download")
    handler.emit(
        logging.LogRecord(
            "ghga_tasks",
            logging.WARNING,
            __file__,
            1,
            "storage, download of bytes 0-9: HTTP 503; retry 1 of 5 in 0.5 s",
            None,
            None,
        )
    )
    bar.close()
    rows = tty.getvalue().split("\n")
    # the message has a row of its own: after the blanked bar, only the message
    assert rows[0].split("\r")[-1] == (
        "ghga-cli: storage, download of bytes 0-9: HTTP 503; retry 1 of 5 in 0.5 s"
    )
    assert rows[0].split("\r")[-2].strip() == ""
    assert rows[1].split("\r")[-1].startswith("download F: download")  # drawn again below
    assert rows[2] == ""


# --- callback errors stay with their engine ------------------------------------------------


class FailingInCallback(Strategy):
    """Downloads (WRITEFUNCTION) or uploads (READFUNCTION); the callback waits until the
    other engine is inside its own callback too, then raises its own error."""

    def __init__(self, url: str, upload: bool, barrier: threading.Barrier, error: Exception):
        self.url, self.upload, self.barrier, self.error = url, upload, barrier, error

    def begin(self, c, job) -> None:
        def callback(*args):
            self.barrier.wait(timeout=60)  # both engines are in their multi loops now
            raise self.error

        c.setopt(pycurl.URL, self.url)
        if self.upload:
            c.setopt(pycurl.UPLOAD, 1)
            c.setopt(pycurl.INFILESIZE_LARGE, 10)
            c.setopt(pycurl.READFUNCTION, callback)
        else:
            c.setopt(pycurl.HTTPGET, 1)
            c.setopt(pycurl.WRITEFUNCTION, callback)

    def end(self, c, job) -> Outcome:
        return Outcome.OK

    def moved(self, c) -> int:
        return 0


def test_two_engines_in_two_threads_keep_their_own_callback_errors(stub, monkeypatch, tmp_path):
    srv = stub(lambda method, path, headers: (200, {}, b"y" * 5000))
    hook_calls = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc_info: hook_calls.append(exc_info))
    hook = sys.excepthook
    barrier = threading.Barrier(2)
    errors = {
        "down": LookupError("the download engine's own"),
        "up": KeyError("the upload engine's own"),
    }
    raised = {}

    def run(name: str) -> None:
        engine = Engine(Settings(retries=0, state_dir=str(tmp_path)))
        strategy = FailingInCallback(f"{srv.url}/{name}", name == "up", barrier, errors[name])
        try:
            engine.run(strategy, [Part(1 if name == "up" else 0, 0, 10)])
        except BaseException as exc:  # noqa: BLE001 - the test looks at whatever it is
            raised[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in errors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert raised == errors  # each engine raised its own error, the very object
    assert hook_calls == []  # nothing went through (or was printed by) sys.excepthook
    assert sys.excepthook is hook


# --- the demo maps a bad --work-dir to a documented code -----------------------------------


def test_demo_with_a_missing_work_dir_is_73(tmp_path):
    pytest.importorskip("fastapi")
    proc = cli("demo", "--work-dir", str(tmp_path / "missing"))
    one_line_error(proc, 73, str(tmp_path / "missing"), "No such file or directory")
    afile = tmp_path / "afile"
    afile.write_text("")
    one_line_error(cli("demo", "--work-dir", str(afile)), 73, "Not a directory")
