"""The options and the run of `cluster node exec` and `job node exec` (services/nodeexec.py)."""

from __future__ import annotations

import click

from batchai_cli.cli.options import Outcome

_SSH_NOTE = "Accepted as az had it, and not needed: batchai reaches nodes without SSH."


def _forwards(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list:
    from batchai_cli.errors import UsageError
    from batchai_cli.services.nodeexec import parse_forward

    try:
        return [parse_forward(value) for value in values]
    except UsageError as exc:
        raise click.BadParameter(exc.message) from None


def exec_options(function):
    """--exec, -n/--node-id, -L/--address (repeatable), and az's SSH options."""
    for decorator in reversed(
        [
            click.option("--exec", "command", metavar="COMMAND", help="A command line to run on the node (bash)."),
            click.option("-n", "--node-id", help="The node's id (`node list` shows them). Default: the first node."),
            click.option(
                "-L",
                "--address",
                "forwards",
                multiple=True,
                metavar="LOCALPORT:HOST:REMOTEPORT",
                callback=_forwards,
                help="Forward 127.0.0.1:LOCALPORT here to HOST:REMOTEPORT as the node sees it (repeatable; "
                "LOCALPORT 0 picks a free port and prints it). Without --exec, until Ctrl-C.",
            ),
            click.option("-p", "--password", "_password", metavar="PASSWORD", help=_SSH_NOTE),
            click.option("-k", "--ssh-private-key", "_ssh_key", metavar="PATH", help=_SSH_NOTE),
        ]
    ):
        function = decorator(function)
    return function


def run_on_node(target, command: str | None, forwards: list) -> Outcome:
    """Run the command (and the forwards) on the target node; exit with the command's code."""
    from batchai_cli.services.nodeexec import execute

    code = execute(target, command, forwards, lambda text: click.echo(text, err=True))
    return Outcome(None, code)
