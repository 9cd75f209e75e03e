"""`batchai configure`: defaults for options (group, workspace, ...) and the subscription id."""

from __future__ import annotations

import click

from batchai_cli import settings
from batchai_cli.cli import tables
from batchai_cli.cli.options import BatchAICommand
from batchai_cli.errors import UsageError


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        for item in value.split():
            name, sep, setting = item.partition("=")
            if not sep:
                raise UsageError(f"'{item}' is not NAME=VALUE.", hint="Example: --defaults group=rg1 workspace=ws1")
            pairs[name.strip().lower()] = setting.strip()
    return pairs


@click.command("configure", cls=BatchAICommand, table=tables.defaults)
@click.option(
    "-d",
    "--defaults",
    "defaults",
    multiple=True,
    metavar="NAME=VALUE",
    help="Space-separated defaults: group, workspace, experiment, cluster, location, output. "
    "An empty value ('group=') removes a default.",
)
@click.option("-l", "--list-defaults", is_flag=True, help="List the defaults in effect.")
@click.option("--subscription", metavar="ID", help="Set the local subscription id used in resource ids.")
@click.option(
    "--shared-dir",
    metavar="PATH",
    help="The folder every node of a Slurm cluster sees at the same path (NFS, Lustre), for job bundles "
    "and node reports. Default: $BATCHAI_HOME/shared; BATCHAI_SHARED_DIR overrides it. An empty value "
    "removes the setting.",
)
@click.argument("more", nargs=-1, metavar="")
def configure(defaults, list_defaults, subscription, shared_dir, more):
    """Manage defaults and settings, kept in $BATCHAI_HOME/config.

    \b
    Examples:
      Set a default resource group and workspace.
        batchai configure --defaults group=MyResourceGroup workspace=MyWorkspace
      Show tables by default.
        batchai configure --defaults output=table
      Remove the default workspace.
        batchai configure --defaults workspace=
      List the defaults in effect.
        batchai configure --list-defaults -o table
      Keep job bundles on a file system every Slurm node mounts.
        batchai configure --shared-dir /nfs/batchai
    """
    if more and not defaults:
        raise UsageError(f"unrecognized arguments: {' '.join(more)}")
    if defaults:
        # `--defaults a=1 b=2`: the values after the first arrive as positional arguments.
        settings.set_defaults(_pairs([*defaults, *more]))
    if subscription:
        settings.set_subscription_id(subscription)
    if shared_dir is not None:
        settings.set_shared_root(shared_dir)
    if list_defaults or not (defaults or subscription or shared_dir is not None):
        return settings.list_defaults()
    return None
