"""The `batchai` command line: the root group and `main()`, the one place that maps errors to exit codes.

Command groups are imported only when used (LAZY_GROUPS), so `batchai --help` and shell completion
never load azure.*, jsonschema or the like.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from batchai_cli import __version__
from batchai_cli.cli.options import GLOBAL_OPTIONS, App, ReaderGone, add_global_options

# name -> ("module:attribute", one-line help). The help is kept here so the root help lists every
# group without importing it.
LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "cluster": ("batchai_cli.cli.cluster:cluster", "Commands to manage clusters."),
    "job": ("batchai_cli.cli.job:job", "Commands to manage jobs."),
    "configure": ("batchai_cli.cli.configure:configure", "Manage defaults and settings, kept in $BATCHAI_HOME/config."),
    "emulators": (
        "batchai_cli.cli.emulators:emulators",
        "Run Azure Storage emulators on this machine (Azure Files, and Azurite for Blob).",
    ),
    "experiment": ("batchai_cli.cli.experiment:experiment", "Commands to manage experiments."),
    "file-server": ("batchai_cli.cli.file_server:file_server", "Commands to manage file servers."),
    "storage": (
        "batchai_cli.cli.storage_browse:storage",
        "Upload and download datasets in Azure Blob and Azure Files.",
    ),
    "workspace": ("batchai_cli.cli.workspace:workspace", "Commands to manage workspaces."),
    "validate": ("batchai_cli.cli.validate:validate", "Check job, cluster and file-server files."),
    "portal": (
        "batchai_cli.cli.portal:portal",
        "Jobs, logs and output files in a browser.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            target, _ = self.lazy[cmd_name]
            module_name, attribute = target.split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The lazy table's text, whether or not the group was imported, so help never varies;
        # a test checks it against each group's own docstring.
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"batchai {__version__}")
    click.echo(f"Python {sys.version.split()[0]} ({sys.platform})")
    ctx.exit(0)


@click.group(
    cls=LazyGroup,
    lazy=LAZY_GROUPS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@add_global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Batch AI workspaces, clusters and jobs, run on this machine or on Slurm.

    The az batchai command line, made real again: the same nouns, verbs, options and output,
    with job.json and cluster.json files as Batch AI read them, and storage on Azure Blob,
    Azure Files or a local folder.
    """
    ctx.ensure_object(App)


def _missing_message(exc: click.MissingParameter) -> str:
    param = exc.param
    if isinstance(param, click.Option):
        names = sorted(param.opts, key=len, reverse=True) + list(param.secondary_opts)
        return f"the following arguments are required: {'/'.join(names)}"
    return str(exc.format_message())


def _usage_hint(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return None
    return f"See '{ctx.command_path} --help'."


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit: 0 ok, 1 error, 2 usage error, 3 not found (as az)."""
    from batchai_cli import errors
    from batchai_cli.cli import terminal

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    # Text from files and command lines may hold lone surrogates (os.fsdecode, json's \ud800): shown
    # escaped, never a UnicodeEncodeError in the middle of the output.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        _check_arguments(args)
        # Without standalone mode Click returns the code of a ctx.exit()/Exit (e.g. `job wait`).
        result = cli.main(args=args, prog_name="batchai", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.MissingParameter as exc:
        terminal.error(_missing_message(exc), hint=_hint_for_missing(exc) or _usage_hint(exc))
        code = 2
    except click.UsageError as exc:
        terminal.error(exc.format_message(), hint=_usage_hint(exc))
        code = 2
    except click.Abort:
        terminal.error("Operation cancelled.")
        code = 1
    except click.ClickException as exc:
        terminal.error(exc.format_message())
        code = exc.exit_code
    except errors.BatchAIError as exc:
        if debug:
            terminal.traceback()
        terminal.report(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        terminal.error("Interrupted.")
        code = 130
    except (BrokenPipeError, ReaderGone):
        # The reader went away (e.g. `| head`): not an error of ours, and nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as exc:
        if debug:
            terminal.traceback()
            terminal.error(f"{type(exc).__name__}: {exc}")
        else:
            terminal.error(
                f"Unexpected error: {type(exc).__name__}: {exc}",
                hint="Run the command again with --debug for the traceback, and report it.",
            )
        code = 1
    sys.exit(code)


def _check_arguments(args: list[str]) -> None:
    """A NUL or a lone surrogate (which no real command line carries, but callers of main() may
    pass) is a usage error here, not a ValueError or UnicodeEncodeError wherever it is used."""
    for arg in args:
        if "\x00" in arg:
            raise click.UsageError("An argument holds a NUL character, which no name, path or value can hold.")
        try:
            os.fsencode(arg)
        except UnicodeEncodeError:
            raise click.UsageError(f"The argument {arg!a} is not text (it holds a lone surrogate).") from None


def _hint_for_missing(exc: click.MissingParameter) -> str | None:
    from batchai_cli.cli.options import DEFAULT_FOR_OPTION

    param = exc.param
    name = DEFAULT_FOR_OPTION.get(param.name) if param is not None else None
    if name:
        return f"(or set a default: batchai configure --defaults {name}=<name>)."
    return None


__all__ = ["GLOBAL_OPTIONS", "cli", "main"]
