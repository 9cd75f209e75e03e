"""`batchai experiment`: create, show, list and delete experiments."""

from __future__ import annotations

from batchai_cli.cli import tables
from batchai_cli.cli.options import (
    group,
    ids_option,
    name_option,
    no_wait_option,
    pass_app,
    resource_group_option,
    workspace_option,
    yes_option,
)
from batchai_cli.cli.targets import one_or_many, resolve_targets, workspace_target
from batchai_cli.cli.terminal import confirm
from batchai_cli.services import experiments

_NAME_HELP = "Name of experiment."


def _targets(app, ids, resource_group, workspace, name):
    return resolve_targets(
        app,
        "experiment",
        ids,
        resource_group,
        [("workspace", workspace, "--workspace"), ("experiment", name, "--name")],
    )


@group()
def experiment() -> None:
    """Commands to manage experiments."""


@experiment.command("create", table=tables.experiments)
@resource_group_option()
@workspace_option()
@name_option("-n", "--name", kind="experiment", help=_NAME_HELP, required=True)
@pass_app
def create(app, resource_group, workspace, name):
    """Create an experiment.

    \b
    Examples:
      Create an experiment.
        batchai experiment create -g MyResourceGroup -w MyWorkspace -n MyExperiment
    """
    (rid,) = _targets(app, (), resource_group, workspace, name)
    return experiments.create_experiment(app.session, rid)


@experiment.command("show", table=tables.experiments)
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="experiment", help=_NAME_HELP)
@ids_option
@pass_app
def show(app, resource_group, workspace, name, ids):
    """Show information about an experiment.

    \b
    Examples:
      Show an experiment.
        batchai experiment show -g MyResourceGroup -w MyWorkspace -n MyExperiment
    """
    found = [
        experiments.get_experiment(app.session, rid) for rid in _targets(app, ids, resource_group, workspace, name)
    ]
    return one_or_many(found)


@experiment.command("list", table=tables.experiments)
@resource_group_option()
@workspace_option()
@pass_app
def list_(app, resource_group, workspace):
    """List experiments in a workspace.

    \b
    Examples:
      List experiments.
        batchai experiment list -g MyResourceGroup -w MyWorkspace -o table
    """
    return experiments.list_experiments(app.session, workspace_target(app, resource_group, workspace))


@experiment.command("delete")
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="experiment", help=_NAME_HELP)
@ids_option
@no_wait_option
@yes_option
@pass_app
def delete(app, resource_group, workspace, name, ids, no_wait, yes):
    """Delete an experiment and its jobs. Running jobs are terminated.

    \b
    Examples:
      Delete an experiment without asking.
        batchai experiment delete -g MyResourceGroup -w MyWorkspace -n MyExperiment -y
    """
    targets = _targets(app, ids, resource_group, workspace, name)
    confirm(skip=yes)
    for rid in targets:
        experiments.delete_experiment(app.session, rid)
