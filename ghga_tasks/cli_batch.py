"""`ghga-cli upload-batch` and `download-batch`: many files in one command, over
ghga_tasks.batch. Registered on `ghga_tasks.cli.main` (imported at the end of cli.py);
errors map to exit codes in cli.run_command, a batch's own code is its most severe file's.
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import click

from .cli import (
    EXIT_CODES_HELP,
    _load,
    download_options,
    main,
    option,
    progress_bar,
    run_command,
    transfer_options,
)
from .progress import human_bytes


def batch_options(f: Callable) -> Callable:
    opts = [
        option(
            "--workers",
            type=int,
            default=None,
            help="Files at once (luigi workers) [4; env GHGA_TASKS_WORKERS].",
        ),
        option(
            "--connections",
            type=int,
            default=None,
            help="Connections of all files together; each file gets at most "
            "max(1, CONNECTIONS // WORKERS) of its --parallel [16].",
        ),
        option(
            "--scheduler-url",
            default=None,
            metavar="URL",
            help="luigi's central scheduler (luigid), for several processes sharing one "
            "batch [in-process; env GHGA_TASKS_SCHEDULER_URL].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _report_batch(batch, settings) -> None:
    for outcome in batch.files:
        if settings.json:
            click.echo(json.dumps(outcome.as_dict(), sort_keys=True))
        if outcome.error is not None:  # said even with --quiet: the exit code is not enough
            message = " ".join(str(outcome.error).split())[:1000]
            click.echo(
                f"ghga-cli: {outcome.file_id}: failed ({outcome.exit_code}): {message}", err=True
            )
        elif not settings.quiet:
            result = outcome.result
            click.echo(
                f"ghga-cli: {result.file_id}: {result.status}, {result.path} "
                f"({human_bytes(result.size)}; moved {human_bytes(result.bytes_transferred)})",
                err=True,
            )
    summary = batch.summary
    if settings.json:
        click.echo(json.dumps(summary, sort_keys=True))
    if not settings.quiet:
        rate = summary["bytes_transferred"] / batch.seconds if batch.seconds > 0 else 0
        click.echo(
            f"ghga-cli: {summary['done']} of {summary['files']} files done, "
            f"{summary['failed']} failed; moved {human_bytes(summary['bytes_transferred'])} "
            f"at {human_bytes(rate)}/s, resumed {human_bytes(summary['bytes_resumed'])}",
            err=True,
        )


def _batch(label: str, config_path, flags: dict, call: Callable) -> None:
    """Settings, a progress bar (files done/total, bytes), the batch, one line per file, a
    summary; exits with the most severe of the files' codes."""
    settings = _load(config_path, **flags)
    with progress_bar(label, settings) as bar:
        batch = call(settings, bar)
    _report_batch(batch, settings)
    if batch.exit_code:
        sys.stdout.flush()
        sys.exit(batch.exit_code)


@main.command("upload-batch", epilog=EXIT_CODES_HELP)
@option("--api-url", required=True, help="Upload Controller API, e.g. http://host:port/upload")
@option(
    "--manifest",
    required=True,
    help="TSV with a header file_id<TAB>file_path (paths relative to the manifest's dir).",
)
@option("--wait/--no-wait", default=False, help="Wait until the server accepted each file.")
@batch_options
@transfer_options
@run_command
def upload_batch_cmd(api_url, manifest, wait, verbose, config_path, **flags):
    """Upload every file of MANIFEST, WORKERS at once; each file resumes on its own."""
    from .batch import upload_batch

    _batch(
        "upload",
        config_path,
        flags,
        lambda settings, bar: upload_batch(
            api_url, manifest, wait=wait, settings=settings, progress=bar
        ),
    )


@main.command("download-batch", epilog=EXIT_CODES_HELP)
@option("--api-url", required=True, help="DRS3 API base, e.g. http://host:port/ga4gh/drs/v1")
@option("--output-dir", required=True, help="Directory the files are saved in.")
@option("--manifest", default=None, help="TSV with a header naming a file_id column.")
@option("--file-id", "file_ids", multiple=True, help="A DRS object id (repeat for more).")
@download_options
@batch_options
@transfer_options
@run_command
def download_batch_cmd(
    api_url, output_dir, manifest, file_ids, overwrite, verbose, config_path, **flags
):
    """Download every file of MANIFEST (or each --file-id) into OUTPUT_DIR, WORKERS at once;
    each is fetched once DRS has staged it, resumes on its own, is verified."""
    from .batch import download_batch
    from .errors import UsageError

    if bool(manifest) == bool(file_ids):
        raise UsageError("give --manifest FILE or one or more --file-id ID (not both)")
    _batch(
        "download",
        config_path,
        flags,
        lambda settings, bar: download_batch(
            api_url,
            manifest or list(file_ids),
            output_dir,
            overwrite=overwrite,
            settings=settings,
            progress=bar,
        ),
    )
