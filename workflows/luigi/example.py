#!/usr/bin/env python
"""A user's own luigi pipeline that downloads GHGA files with ghga_tasks and then uses them.

    python workflows/luigi/example.py \\
        --api-url https://host/ga4gh/drs/v1 --file-id F1 --file-id F2 \\
        --output-dir data --state-dir ~/ghga-state [--workers 2]

The DAG, per file id:

    ghga.PollOutbox  ->  ghga.FetchFile  ->  CountFile  ->  Summary (one for all ids)
    (wait for staging)   (ranged GETs,       (your task:     (your task: one TSV,
                          verify SHA-256,     bytes, lines,
                          place OUTPUT_DIR/   sha256)         path printed on stdout)
                          FILE_ID)

FetchFile's target is a small JSON marker in the state dir (`done.json`: path, size, sha256);
the bytes land in OUTPUT_DIR/FILE_ID. Your own tasks read that file. The state dir keeps what
a re-run needs to resume (which byte ranges are done, the staged object), so keep it on
stable storage and give the same --state-dir every time.

Settings (parallel connections, timeouts, token, ...) come from the same places as for
`ghga-cli`: the config file ($GHGA_TASKS_CONFIG or ~/.config/ghga_tasks/config.toml) and
GHGA_TASKS_* environment variables; e.g. GHGA_TASKS_TOKEN=... GHGA_TASKS_PARALLEL=8.

Exit code (the ghga-cli table, so a scheduler around this script can react the same way):
0 everything done; the code of the first failed download that retrying will not fix
(65 integrity, 69 API refuses, 73 cannot write, 77 not allowed, 78 config, ...);
else 75 when a download failed transiently (run the same command again: it resumes);
1 when one of your own tasks failed.

luigi.build() returns True even when tasks failed, so this script looks at the detailed
summary and at which tasks are complete, never at that boolean.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import luigi
from luigi.execution_summary import LuigiStatusCode

from ghga_tasks.errors import ExitCode
from ghga_tasks.tasks import failure_of
from ghga_tasks.tasks.download import FetchFile
from ghga_tasks.transfer_dir import FAILURE


class CountFile(luigi.Task):
    """Bytes, lines and SHA-256 of one downloaded file: an example of your own analysis step."""

    api_url = luigi.Parameter()
    file_id = luigi.Parameter()
    output_dir = luigi.Parameter()
    state_dir = luigi.Parameter()

    def requires(self) -> FetchFile:
        return FetchFile(
            api_url=self.api_url,
            file_id=self.file_id,
            output_dir=self.output_dir,
            state_dir=self.state_dir,
        )

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(os.path.join(self.output_dir, "counts", f"{self.file_id}.json"))

    def run(self) -> None:
        done = self.input().read()  # FetchFile's marker: {"path", "size", "sha256", ...}
        path = os.path.join(self.output_dir, self.file_id)
        size = lines = 0
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                size += len(block)
                lines += block.count(b"\n")
                digest.update(block)
        if done and done.get("sha256") and done["sha256"] != digest.hexdigest():
            raise RuntimeError(f"{path} changed after it was downloaded and verified")
        # LocalTarget.open("w") writes a temporary file and renames it: atomic
        with self.output().open("w") as out:
            json.dump(
                {
                    "file_id": self.file_id,
                    "bytes": size,
                    "lines": lines,
                    "sha256": digest.hexdigest(),
                },
                out,
                sort_keys=True,
            )


class Summary(luigi.Task):
    """One TSV over all files; requires a CountFile (and so a FetchFile) per id."""

    api_url = luigi.Parameter()
    file_ids = luigi.ListParameter()
    output_dir = luigi.Parameter()
    state_dir = luigi.Parameter()

    def requires(self) -> list[CountFile]:
        return [
            CountFile(
                api_url=self.api_url,
                file_id=file_id,
                output_dir=self.output_dir,
                state_dir=self.state_dir,
            )
            for file_id in self.file_ids
        ]

    def output(self) -> luigi.LocalTarget:
        # named after the set of ids: another set is another summary, not "already complete"
        key = hashlib.sha256("\n".join(sorted(self.file_ids)).encode()).hexdigest()[:10]
        return luigi.LocalTarget(os.path.join(self.output_dir, f"summary-{key}.tsv"))

    def run(self) -> None:
        rows = []
        for target in self.input():
            with target.open("r") as fh:
                rows.append(json.load(fh))
        with self.output().open("w") as out:
            out.write("file_id\tbytes\tlines\tsha256\n")
            for row in rows:
                out.write(f"{row['file_id']}\t{row['bytes']}\t{row['lines']}\t{row['sha256']}\n")


def fetch_tasks(root: Summary) -> list[FetchFile]:
    return [count.requires() for count in root.requires()]


def exit_code(result: luigi.LuigiRunResult, root: Summary) -> int:
    """0, or the exit code a shell or workflow engine should see (see the module doc)."""
    if (
        result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY)
        and root.complete()
    ):
        return int(ExitCode.OK)
    codes = []
    for fetch in fetch_tasks(root):
        if fetch.complete():
            continue
        error = failure_of(fetch)  # the typed error a failed ghga task left behind
        code = int(error.exit_code) if error else int(ExitCode.INTERNAL)
        print(f"example: {fetch.file_id}: exit {code}: {error or 'not done'}", file=sys.stderr)
        codes.append(code)
    retry_later = (int(ExitCode.TRANSIENT), int(ExitCode.INTERRUPTED))
    for code in codes:
        if code not in retry_later:
            return code  # retrying will not fix this one: say so first
    if codes:
        return codes[0]
    return int(ExitCode.INTERNAL)  # the downloads are fine: one of our own tasks failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api-url", required=True, help="DRS3 API base URL")
    parser.add_argument(
        "--file-id",
        action="append",
        required=True,
        dest="file_ids",
        help="a file id to download (repeat for more)",
    )
    parser.add_argument("--output-dir", required=True)
    parser.add_argument(
        "--state-dir", required=True, help="resumable state; outside anything that gets cleaned up"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="luigi workers (processes); each download uses several "
        "connections already (GHGA_TASKS_PARALLEL)",
    )
    args = parser.parse_args(argv)

    output_dir = os.path.abspath(args.output_dir)
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(output_dir, exist_ok=True)
    root = Summary(
        api_url=args.api_url, file_ids=args.file_ids, output_dir=output_dir, state_dir=state_dir
    )
    for fetch in fetch_tasks(root):  # a failure file from an earlier run is not news
        fetch.tdir.remove(FAILURE)
    result = luigi.build([root], local_scheduler=True, workers=args.workers, detailed_summary=True)
    code = exit_code(result, root)
    if code == 0:
        print(root.output().path)
    elif code in (ExitCode.TRANSIENT, ExitCode.INTERRUPTED):
        print("example: run the same command again to resume", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
