"""The pieces every command shares: the per-invocation App, az's global options, the command class
that renders a command's return value, and the common resource options with name completion.

A command is written as:

    @workspace.command("show", table=tables.workspaces)
    @resource_group_option(required=False)
    @click.option("-n", "--workspace", "name", ...)
    @ids_option
    @pass_app
    def show(app, resource_group, name, ids):
        '''Show information about a workspace.'''
        return workspaces.get_workspace(app.session, ...)

The returned data is rendered by the framework with -o/--query; returning None prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from batchai_cli.output import FORMATS

# Which `batchai configure --defaults` name fills which option (by its Python parameter name).
DEFAULT_FOR_OPTION = {
    "resource_group": "group",
    "workspace": "workspace",
    "experiment": "experiment",
    "cluster": "cluster",
    "location": "location",
}


class Globals:
    """az's global options as given on this command line."""

    def __init__(self) -> None:
        self.output: str | None = None
        self.query: str | None = None
        self.debug = False
        self.verbose = False
        self.only_show_errors = False


class App:
    """One per invocation: the global options, and the session opened on first use."""

    def __init__(self) -> None:
        self.globals = Globals()
        self._session: Any = None

    @property
    def session(self):
        """The services' session (state store + subscription), opened lazily."""
        if self._session is None:
            from batchai_cli.services import open_session

            self._session = open_session()
        return self._session

    def output_format(self) -> str:
        if self.globals.output:
            return self.globals.output
        from batchai_cli import settings

        configured = settings.get_default("output")
        return configured if configured in FORMATS else "json"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _app(ctx: click.Context) -> App:
    root = ctx.find_root()
    if not isinstance(root.obj, App):
        root.obj = App()
    return root.obj


def pass_app(function: Callable) -> Callable:
    """Pass the App as the first argument (like click.pass_obj, creating it when needed)."""

    def wrapper(*args, **kwargs):
        return function(_app(click.get_current_context()), *args, **kwargs)

    return click.decorators.update_wrapper(wrapper, function)


def _store(attribute: str) -> Callable:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        # A global given on the command wins over the same global given before the group name.
        if value not in (None, False):
            setattr(_app(ctx).globals, attribute, value)

    return callback


GLOBAL_OPTIONS: list[click.Option] = [
    click.Option(
        ["-o", "--output"],
        type=click.Choice(FORMATS),
        expose_value=False,
        callback=_store("output"),
        help="Output format. Default: json, or the configured default.",
    ),
    click.Option(
        ["--query"],
        metavar="JMESPATH",
        expose_value=False,
        callback=_store("query"),
        help="JMESPath query string. See http://jmespath.org/ for more information and examples.",
    ),
    click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        callback=_store("debug"),
        help="Increase logging verbosity to show all debug logs and tracebacks.",
    ),
    click.Option(
        ["--verbose"],
        is_flag=True,
        expose_value=False,
        callback=_store("verbose"),
        help="Increase logging verbosity. Use --debug for full debug logs.",
    ),
    click.Option(
        ["--only-show-errors"],
        is_flag=True,
        expose_value=False,
        callback=_store("only_show_errors"),
        help="Only show errors, suppressing warnings.",
    ),
]
_GLOBAL_NAMES = {opt.name for opt in GLOBAL_OPTIONS}


def add_global_options(function: Callable) -> Callable:
    """Give a group az's global options too, so `batchai --debug workspace list` works."""
    for option in reversed(GLOBAL_OPTIONS):
        function = click.option(*option.opts, **_option_kwargs(option))(function)
    return function


def _option_kwargs(option: click.Option) -> dict:
    return {
        "type": option.type,
        "is_flag": option.is_flag,
        "expose_value": False,
        "callback": option.callback,
        "help": option.help,
        "metavar": option.metavar,
    }


class ReaderGone(Exception):
    """stdout's reader went away (a closed pipe): nothing left to say, and not an error."""


class Outcome:
    """What a command returns when the exit code is part of the answer (`job wait` ends with the
    job's own code; `validate` with 1 for an invalid file): the value to render, then the code."""

    def __init__(self, value: Any, exit_code: int = 0):
        self.value = value
        self.exit_code = exit_code


class BatchAICommand(click.Command):
    """A leaf command: adds az's global options, renders the return value, maps -o/--query."""

    def __init__(self, *args, table: Callable | None = None, **kwargs):
        kwargs.setdefault("context_settings", {}).setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*args, **kwargs)
        self.table = table
        # The same Option objects serve every command: they hold no per-command state, and building
        # them again for each of the ~40 commands would cost start-up time.
        self.params.extend(GLOBAL_OPTIONS)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                (shared if param.name in _GLOBAL_NAMES or param is self.get_help_option(ctx) else own).append(record)
        if own:
            with formatter.section("Arguments"):
                formatter.write_dl(own)
        with formatter.section("Global Arguments"):
            formatter.write_dl(shared)

    def invoke(self, ctx: click.Context) -> Any:
        from batchai_cli.cli import terminal
        from batchai_cli.output import render

        app = _app(ctx)
        g = app.globals
        terminal.configure_logging(verbose=g.verbose, debug=g.debug, only_errors=g.only_show_errors)
        try:
            result = super().invoke(ctx)
            exit_code = 0
            if isinstance(result, Outcome):
                result, exit_code = result.value, result.exit_code
            text = render(result, app.output_format(), query=g.query, table=self.table)
        finally:
            app.close()
        if text:
            try:
                click.echo(text, nl=False)
            except BrokenPipeError:
                # Click would turn this into exit 1; main() ends quietly with 0 (e.g. `| head`).
                raise ReaderGone() from None
        if exit_code:
            raise click.exceptions.Exit(exit_code)
        return None


class BatchAIGroup(click.Group):
    """A command group whose subcommands are BatchAICommands (and groups of the same class)."""

    command_class = BatchAICommand
    group_class = type  # subgroups are BatchAIGroup too

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("context_settings", {}).setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*args, **kwargs)


def group(name: str | None = None, **kwargs) -> Callable[[Callable], BatchAIGroup]:
    return click.group(name, cls=BatchAIGroup, **kwargs)


# -- shared options -------------------------------------------------------------------------------


def _configured(name: str) -> Callable[[], str | None]:
    def default() -> str | None:
        from batchai_cli import settings

        return settings.get_default(name)

    return default


def _require(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # Checked here rather than with required=True: a configured default may be absent, and Click
    # versions differ on whether a default callable's None counts as missing.
    if value in (None, "") and not ctx.resilient_parsing:
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def defaulted_option(
    *flags: str, default_name: str, required: bool, help: str, kind: str | None = None, dest: str | None = None
) -> Callable:
    """An option that falls back on `batchai configure --defaults <default_name>=...`."""
    names = (*flags, dest) if dest else flags
    return click.option(
        *names,
        default=_configured(default_name),
        callback=_require if required else None,
        help=help + (" [required]" if required else ""),
        shell_complete=complete_names_of(kind) if kind else None,
    )


def complete_names_of(kind: str) -> Callable:
    """Complete names of `kind` from the state store, within the -g/-w/-e already typed."""

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        try:
            from batchai_cli.services import complete_names

            params = dict(ctx.params)
            return [name for name in complete_names(kind, params) if name.lower().startswith(incomplete.lower())]
        except Exception:  # completion must never print a traceback into the user's shell
            return []

    return complete


def resource_group_option(required: bool = True) -> Callable:
    return defaulted_option(
        "-g",
        "--resource-group",
        dest="resource_group",
        default_name="group",
        required=required,
        kind="group",
        help="Name of resource group. You can configure the default group using "
        "`batchai configure --defaults group=<name>`.",
    )


def workspace_option(required: bool = True) -> Callable:
    return defaulted_option(
        "-w",
        "--workspace",
        dest="workspace",
        default_name="workspace",
        required=required,
        kind="workspace",
        help="Name of workspace. You can configure the default using `batchai configure --defaults workspace=<name>`.",
    )


def experiment_option(required: bool = True) -> Callable:
    return defaulted_option(
        "-e",
        "--experiment",
        dest="experiment",
        default_name="experiment",
        required=required,
        kind="experiment",
        help="Name of experiment. You can configure the default using "
        "`batchai configure --defaults experiment=<name>`.",
    )


def cluster_option() -> Callable:
    """-c/--cluster of the commands that work on one cluster's nodes or files."""
    return defaulted_option(
        "-c",
        "--cluster",
        dest="cluster_name",
        default_name="cluster",
        required=True,
        kind="cluster",
        help="Name of cluster.",
    )


def name_option(*flags: str, kind: str, help: str, required: bool = False) -> Callable:
    return click.option(*flags, "name", required=required, help=help, shell_complete=complete_names_of(kind))


location_option = defaulted_option(
    "-l",
    "--location",
    default_name="location",
    required=False,
    help="Location. Default: the configured location (`batchai configure --defaults location=<name>`), else the "
    "location of the resource group's other workspaces, else 'local'.",
)
ids_option = click.option(
    "--ids",
    multiple=True,
    metavar="ID",
    help="One or more resource IDs (space-delimited). If provided, no other 'Resource Id' arguments should be "
    "specified.",
)
yes_option = click.option("-y", "--yes", is_flag=True, help="Do not prompt for confirmation.")
no_wait_option = click.option("--no-wait", is_flag=True, help="Do not wait for the long-running operation to finish.")


def split_ids(values: tuple[str, ...]) -> list[str]:
    """--ids takes several ids, repeated or space-separated in one argument, as az does."""
    return [part for value in values for part in value.split()]
