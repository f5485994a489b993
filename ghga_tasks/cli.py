"""`ghga-cli`: a thin click shell over the library. Exit codes are mapped here, and only here.

Exit codes (sysexits): 0 done (also "already complete"), 1 internal error, 2 usage,
65 size/checksum mismatch, 66 local input missing, 69 API refuses, 73 cannot write output,
75 transient (state kept; run again), 77 not allowed, 78 configuration, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import traceback
from typing import Callable, Iterator, NoReturn

import click

from . import __version__
from .errors import EXIT_MEANINGS, ExitCode, GhgaError
from .progress import BarLogHandler, ProgressBar, human_bytes

log = logging.getLogger("ghga_tasks")


def option(*names: str, **kwargs):
    """An option under both spellings: --api-url and --api_url."""
    spellings = []
    for name in names:
        spellings.append(name)
        if name.startswith("--") and "-" in name[2:] and "/" not in name:
            spellings.append("--" + name[2:].replace("-", "_"))
    return click.option(*spellings, **kwargs)


def transfer_options(f: Callable) -> Callable:
    opts = [
        option("--parallel", type=int, default=None, help="Concurrent connections [4]."),
        option(
            "--max-rate",
            default=None,
            metavar="BYTES/S",
            help="Bandwidth cap for the file, e.g. 50M or 10MiB [unlimited].",
        ),
        option(
            "--state-dir",
            default=None,
            type=click.Path(file_okay=False),
            help="Where resumable state lives [user cache dir; env GHGA_TASKS_STATE_DIR].",
        ),
        option("--retries", type=int, default=None, help="Retries per request [5]."),
        option(
            "--timeout",
            type=float,
            default=None,
            help="Connect/read timeout and stall limit in seconds [60].",
        ),
        option(
            "--max-wait",
            type=float,
            default=None,
            help="Deadline in seconds for staging or acceptance [3600].",
        ),
        option("--ca-bundle", default=None, help="CA bundle to verify TLS with."),
        option(
            "--token",
            default=None,
            help="Sent as 'Authorization: Bearer TOKEN' (visible in `ps`: prefer "
            "--token-file or env GHGA_TASKS_TOKEN).",
        ),
        option(
            "--token-file",
            default=None,
            metavar="FILE",
            help="Read the token from the first line of FILE [env GHGA_TASKS_TOKEN_FILE].",
        ),
        option(
            "--config",
            "config_path",
            default=None,
            type=click.Path(dir_okay=False),
            help="Config file (TOML) [env GHGA_TASKS_CONFIG].",
        ),
        option(
            "--json",
            "json_output",
            is_flag=True,
            default=None,
            help="Print one JSON object per file on stdout.",
        ),
        option("--quiet", "-q", is_flag=True, default=None, help="No progress, no summary."),
        option("--verbose", "-v", is_flag=True, default=False, help="Log details to stderr."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def exit_for(exc: BaseException, verbose: bool = False) -> NoReturn:
    """The one place that maps errors to exit codes and one-line messages."""
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        click.echo(
            "ghga-cli: interrupted; the state is kept, run the same command again to resume",
            err=True,
        )
        sys.exit(int(ExitCode.INTERRUPTED))
    if isinstance(exc, GhgaError):
        message, code = exc.message, int(exc.exit_code)
    elif isinstance(exc, click.ClickException):  # bad or missing flags, from click itself
        message, code = exc.format_message(), exc.exit_code
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            message = message.rstrip(".") + f" (see '{ctx.command_path} --help')"
    else:  # a bug: say so, in one line unless verbose
        if verbose:
            traceback.print_exc()
        message, code = f"{type(exc).__name__}: {exc}", int(ExitCode.INTERNAL)
    kind = (
        "internal error"
        if code == ExitCode.INTERNAL and not isinstance(exc, click.ClickException)
        else "error"
    )
    message = " ".join(str(message).split())[:1000]  # one line, whatever the server sent
    click.echo(f"ghga-cli: {kind}: {message}", err=True)
    sys.exit(code)


def run_command(func: Callable) -> Callable:
    """Runs a command; its errors end through exit_for()."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        verbose = kwargs.get("verbose", False)
        # warnings (a retry and its wait, a missing checksum) show with default flags too
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.WARNING,
            format="ghga-cli: %(message)s",
            handlers=[BarLogHandler(sys.stderr)],
        )
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            exit_for(exc, verbose)
        ctx = click.get_current_context(silent=True)
        if ctx is not None and ctx.find_root().obj is OWN_PROCESS:
            _exit_now(ExitCode.OK)

    return wrapper


class OneLineGroup(click.Group):
    """Click's own errors (bad or missing flags) end like every other error: one line."""

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False
        if args is None:  # the process's own command line, not an in-process caller
            extra.setdefault("obj", OWN_PROCESS)
        args = list(sys.argv[1:] if args is None else args)
        try:
            self._refuse_repeated_options(args)
            code = super().main(args, prog_name or "ghga-cli", **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `ghga-cli`: the help
            exc.show()
            sys.exit(exc.exit_code)
        except (click.ClickException, click.Abort) as exc:
            exit_for(exc)
        sys.exit(code if isinstance(code, int) else 0)

    def _refuse_repeated_options(self, args: list) -> None:
        """An option that takes one value, given twice, is a usage error: click would keep
        the last one silently (a second --file-id is not a second file)."""
        command = self.commands.get(next((a for a in args if not a.startswith("-")), ""))
        if command is None:
            return
        names = {}
        for param in command.params:
            if isinstance(param, click.Option) and not param.multiple and not param.count:
                for spelling in (*param.opts, *param.secondary_opts):
                    names[spelling] = param
        seen = set()
        for arg in args:
            if arg == "--":
                break
            param = names.get(arg.split("=", 1)[0])
            if param is None:
                continue
            if param.name in seen:
                raise click.UsageError(
                    f"{param.opts[0]} was given more than once; give it once (one file per command)"
                )
            seen.add(param.name)


OWN_PROCESS = object()  # the root context's obj when ghga-cli runs as its own process


def _exit_now(code: int) -> None:
    """Exit without tearing down the interpreter: the work is done, the state files are
    closed, only the output streams need flushing. Only a success of ghga-cli run as its
    own process ends here (never the library, an error or an in-process caller): the
    teardown of luigi, requests and pycurl is a fifth of the run of a finished command,
    which workflow engines run again often."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(int(code))


def _interrupt(signum, frame):
    """SIGTERM (workflow engines cancelling a job) ends like Ctrl-C: state kept, exit 130."""
    raise KeyboardInterrupt


EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()
)


def _check_flags(flags: dict) -> None:
    """Each flag's value on its own: a bad one is a usage error (2)."""
    from .errors import UsageError
    from .settings import OutOfRange, convert

    for name, value in flags.items():
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        try:
            convert(name, value)
        except OutOfRange as exc:
            raise UsageError(f"{flag} {exc}") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad value for {flag}: {exc}") from None
    if flags.get("token") is not None and flags.get("token_file") is not None:
        raise UsageError("give --token or --token-file, not both")


def _load(config_path, **flags):
    """Settings from config < env < flags. A bad flag is a usage error (2); a bad config file,
    environment, CA bundle or token file a configuration error (78)."""
    from .settings import load

    flags["json"] = flags.pop("json_output")
    _check_flags(flags)
    return load(config_path, **flags)


def _report(result, settings) -> None:
    if settings.json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
    if not settings.quiet:
        rate = result.bytes_transferred / result.seconds if result.seconds > 0 else 0
        click.echo(
            f"ghga-cli: {result.file_id}: {result.status}, {result.path} "
            f"({human_bytes(result.size)}; moved {human_bytes(result.bytes_transferred)} "
            f"at {human_bytes(rate)}/s, resumed {human_bytes(result.bytes_resumed)}, "
            f"sha256 {result.sha256 or 'n/a'})",
            err=True,
        )


@contextlib.contextmanager
def progress_bar(label: str, settings) -> Iterator[ProgressBar]:
    """A progress bar on stderr (none with --quiet), which log lines clear first."""
    bar = ProgressBar(label, enabled=None if not settings.quiet else False)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, BarLogHandler)]
    for handler in handlers:
        handler.bar = bar
    try:
        yield bar
    finally:
        for handler in handlers:
            handler.bar = None
        bar.close()


def _transfer(label: str, config_path, flags: dict, call: Callable) -> None:
    """Settings, a progress bar, the library call, the result: shared by both commands."""
    settings = _load(config_path, **flags)
    with progress_bar(label, settings) as bar:
        result = call(settings, bar)
    _report(result, settings)


@click.group(
    cls=OneLineGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ghga-cli")
def main() -> None:
    """Resumable, parallel up- and download for the GHGA file services."""


@main.command("upload-by-id", epilog=EXIT_CODES_HELP)
@option("--api-url", required=True, help="Upload Controller API, e.g. http://host:port/upload")
@option("--file-id", required=True, help="The registered file's id.")
@option("--file-path", required=True, help="The local file to upload.")
@option("--wait/--no-wait", default=False, help="Wait until the server accepted the file.")
@transfer_options
@run_command
def upload_cmd(api_url, file_id, file_path, wait, verbose, config_path, **flags):
    """Upload FILE_PATH as the registered file FILE_ID (resumes after any interruption)."""
    from .api import upload_by_id

    _transfer(
        f"upload {file_id}",
        config_path,
        flags,
        lambda settings, bar: upload_by_id(
            api_url, file_id, file_path, wait=wait, settings=settings, progress=bar
        ),
    )


def download_options(f: Callable) -> Callable:
    """What both download commands take besides the transfer options."""
    opts = [
        option(
            "--part-size", default=None, metavar="BYTES", help="Range size, e.g. 64MiB [64MiB]."
        ),
        option(
            "--overwrite", is_flag=True, default=False, help="Replace a different existing file."
        ),
        option(
            "--partial-dir",
            default=None,
            type=click.Path(file_okay=False),
            help="Where partial bytes wait, for engines that delete failed outputs [output dir].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@main.command("download-by-id", epilog=EXIT_CODES_HELP)
@option("--api-url", required=True, help="DRS3 API base, e.g. http://host:port/ga4gh/drs/v1")
@option("--file-id", required=True, help="The DRS object id.")
@option("--output-dir", required=True, help="Directory the file is saved in.")
@download_options
@transfer_options
@run_command
def download_cmd(api_url, file_id, output_dir, overwrite, verbose, config_path, **flags):
    """Download FILE_ID into OUTPUT_DIR (waits for staging; resumes; verifies SHA-256)."""
    from .api import download_by_id

    _transfer(
        f"download {file_id}",
        config_path,
        flags,
        lambda settings, bar: download_by_id(
            api_url, file_id, output_dir, overwrite=overwrite, settings=settings, progress=bar
        ),
    )


@main.command("demo")
@option("--size", default="256MiB", metavar="BYTES", help="Size of the generated file [256MiB].")
@option("--parallel", type=int, default=None, help="Concurrent connections [4].")
@option("--work-dir", default=None, help="Where the temporary stack and files go [TMPDIR].")
@option("--verbose", "-v", is_flag=True, default=False, help="Log details to stderr.")
@run_command
def demo_cmd(size, parallel, work_dir, verbose):
    """Start the embedded stack, upload a generated file, download it, verify it."""
    from .demo import run_demo
    from .errors import UsageError
    from .settings import load, parse_size

    try:
        nbytes = parse_size(size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_flags({"parallel": parallel})
    settings = load(None, env={}, parallel=parallel, quiet=True)
    run_demo(nbytes, settings, work_dir, say=lambda line: click.echo(line))


try:
    from .server.command import serve
except ModuleNotFoundError as _exc:  # pragma: no cover - only while server/command.py is missing
    if "ghga_tasks.server" not in str(_exc):
        raise
else:
    main.add_command(serve)

from . import cli_batch  # noqa: E402,F401 - registers upload-batch and download-batch
