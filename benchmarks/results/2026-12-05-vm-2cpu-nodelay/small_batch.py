"""Many small files through `upload-batch` and `download-batch`, for one or more checkouts
of ghga_tasks in alternating rounds (each checkout's own server and client):

    python small_batch.py FILES SIZE ROUNDS SOURCES...   # e.g. 32 1048576 2 /tmp/prev .

Each round starts `python -m ghga_tasks serve` (embedded SeaweedFS) in the checkout with
FILES random files of SIZE bytes registered, uploads them in one `upload-batch`, waits
until the server accepted all, downloads them in one `download-batch`, compares the bytes
and prints the wall time of both commands."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import requests


def accepted(admin_api: str, count: int) -> bool:
    for i in range(count):
        info = requests.get(f"{admin_api}/files/f{i}", timeout=30).json()
        if not any(u.get("status") == "accepted" for u in info.get("uploads", [])):
            return False
    return True


def one_round(sources: str, count: int, size: int) -> tuple:
    work = tempfile.mkdtemp(prefix="small-batch-")
    try:
        os.makedirs(f"{work}/files")
        regs, rows = [], ["file_id\tfile_path"]
        for i in range(count):
            data = os.urandom(size)
            with open(f"{work}/files/f{i}", "wb") as f:
                f.write(data)
            regs += ["--register", f"f{i}={size}:{hashlib.sha256(data).hexdigest()}"]
            rows.append(f"f{i}\tfiles/f{i}")
        with open(f"{work}/upload.tsv", "w") as f:
            f.write("\n".join(rows) + "\n")
        with open(f"{work}/download.tsv", "w") as f:
            f.write("file_id\n" + "".join(f"f{i}\n" for i in range(count)))
        env = dict(os.environ, PYTHONPATH=sources)
        py = [sys.executable, "-m", "ghga_tasks"]  # in SOURCES: `-m` looks there first
        serve = py + ["serve", "--data-dir", f"{work}/server", "--retry-after", "1"]
        srv = subprocess.Popen(
            serve + ["--log-level", "warning"] + regs,
            stdout=subprocess.PIPE,
            text=True,
            cwd=sources,
            env=env,
        )
        try:
            urls = json.loads(srv.stdout.readline())
            started = time.perf_counter()
            up = ["upload-batch", "--api-url", urls["upload_api"]]
            up += ["--manifest", f"{work}/upload.tsv", "--state-dir", f"{work}/up", "-q"]
            subprocess.run(py + up, cwd=sources, env=env, check=True, timeout=600)
            upload = time.perf_counter() - started
            deadline = time.monotonic() + 300
            while not accepted(urls["admin_api"], count):
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not accept every file within 300 s")
                time.sleep(1)
            started = time.perf_counter()
            down = ["download-batch", "--api-url", urls["drs_api"], "--output-dir", work]
            down += ["--manifest", f"{work}/download.tsv", "--state-dir", f"{work}/dn", "-q"]
            subprocess.run(py + down, cwd=sources, env=env, check=True, timeout=600)
            download = time.perf_counter() - started
        finally:
            srv.terminate()
            srv.wait(60)
        for i in range(count):
            with open(f"{work}/f{i}", "rb") as got, open(f"{work}/files/f{i}", "rb") as sent:
                if got.read() != sent.read():
                    raise AssertionError(f"f{i}: the downloaded bytes differ")
        return upload, download
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(count: int, size: int, rounds: int, sources: list) -> None:
    for r in range(rounds):
        for s in sources:
            upload, download = one_round(os.path.abspath(s), count, size)
            print(
                f"round {r + 1}: {s}: upload-batch {upload:.2f} s, download-batch "
                f"{download:.2f} s ({count} files of {size} bytes)",
                flush=True,
            )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
