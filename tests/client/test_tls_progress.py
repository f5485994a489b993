"""TLS is verified by default (API and storage); --ca-bundle trusts a private CA.
The progress bar draws only on a terminal."""

from __future__ import annotations

import io
import os
import subprocess

import pytest
from helpers import cli_download, stub_object

from ghga_tasks.progress import ProgressBar
from ghga_tasks.server.stub import StubServer


@pytest.fixture
def tls_stub(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    proc = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    data = os.urandom(300_000)

    def tls_server(handler) -> StubServer:
        return StubServer(handler, tls=(str(cert), str(key)))

    server = stub_object(tls_server, data, path="/blob?sig=1")
    yield server, cert, data
    server.close()


def test_tls_verified_by_default(tls_stub, tmp_path):
    server, cert, data = tls_stub
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(server.url, "x", out, tmp_path / "s")
    assert proc.returncode == 78, proc.stderr
    assert "TLS verification failed" in proc.stderr
    assert not (out / "x").exists()


def test_ca_bundle_trusts_private_ca_for_api_and_storage(tls_stub, tmp_path):
    server, cert, data = tls_stub
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(
        server.url, "x", out, tmp_path / "s", "--ca-bundle", str(cert), "--part-size", "1MiB"
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "x").read_bytes() == data


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only():
    tty = FakeTty()
    bar = ProgressBar("download F", stream=tty)
    bar(0, 1000, "download")
    bar(1000, 1000, "download")
    bar.close()
    text = tty.getvalue()
    assert "download F: download" in text and "100.0%" in text and "ETA" in text
    assert text.endswith("\n")
    pipe = io.StringIO()
    quiet = ProgressBar("download F", stream=pipe)
    quiet(500, 1000, "download")
    quiet.close()
    assert pipe.getvalue() == ""
