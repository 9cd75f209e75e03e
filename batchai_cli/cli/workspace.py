"""`batchai workspace`: create, show, list and delete workspaces."""

from __future__ import annotations

import click

from batchai_cli.cli import tables
from batchai_cli.cli.options import (
    defaulted_option,
    group,
    ids_option,
    location_option,
    name_option,
    no_wait_option,
    pass_app,
    resource_group_option,
    yes_option,
)
from batchai_cli.cli.targets import one_or_many, resolve_targets
from batchai_cli.cli.terminal import confirm
from batchai_cli.services import workspaces

_NAME_HELP = "Name of workspace."
# show and delete fall back on the configured default workspace, as -w does elsewhere.
_defaulted_name = defaulted_option(
    "-n",
    "--workspace",
    dest="name",
    default_name="workspace",
    required=False,
    kind="workspace",
    help=_NAME_HELP + " You can configure the default using `batchai configure --defaults workspace=<name>`.",
)


@group()
def workspace() -> None:
    """Commands to manage workspaces."""


@workspace.command("create", table=tables.workspaces)
@resource_group_option()
@name_option("-n", "--workspace", kind="workspace", help=_NAME_HELP, required=True)
@location_option
@pass_app
def create(app, resource_group, name, location):
    """Create a workspace.

    \b
    Examples:
      Create a workspace in East US.
        batchai workspace create -g MyResourceGroup -n MyWorkspace -l eastus
    """
    return workspaces.create_workspace(app.session, resource_group, name, location=location)


@workspace.command("show", table=tables.workspaces)
@resource_group_option(required=False)
@_defaulted_name
@ids_option
@pass_app
def show(app, resource_group, name, ids):
    """Show information about a workspace.

    \b
    Examples:
      Show a workspace.
        batchai workspace show -g MyResourceGroup -n MyWorkspace
    """
    targets = resolve_targets(app, "workspace", ids, resource_group, [("workspace", name, "--workspace")])
    found = [workspaces.get_workspace(app.session, rid) for rid in targets]
    return one_or_many(found)


@workspace.command("list", table=tables.workspaces)
@resource_group_option(required=False)
@pass_app
def list_(app, resource_group):
    """List workspaces, in a resource group or in the whole subscription.

    \b
    Examples:
      List all workspaces in the subscription.
        batchai workspace list -o table
      List workspaces in a resource group.
        batchai workspace list -g MyResourceGroup -o table
    """
    return workspaces.list_workspaces(app.session, resource_group=resource_group)


@workspace.command("delete")
@resource_group_option(required=False)
@_defaulted_name
@ids_option
@click.option(
    "--force",
    is_flag=True,
    help="Also delete the experiments (with their jobs), clusters and file "
    "servers the workspace holds. Without it, a workspace that holds any is kept.",
)
@no_wait_option
@yes_option
@pass_app
def delete(app, resource_group, name, ids, force, no_wait, yes):
    """Delete a workspace.

    \b
    Examples:
      Delete a workspace without asking.
        batchai workspace delete -g MyResourceGroup -n MyWorkspace -y
      Delete a workspace and everything in it.
        batchai workspace delete -g MyResourceGroup -n MyWorkspace --force -y
    """
    targets = resolve_targets(app, "workspace", ids, resource_group, [("workspace", name, "--workspace")])
    confirm(skip=yes)
    for rid in targets:
        workspaces.delete_workspace(app.session, rid, force=force)
