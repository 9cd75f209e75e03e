"""`batchai cluster`: create, show, list, delete, resize and auto-scale clusters; list their nodes."""

from __future__ import annotations

import click

from batchai_cli.cli import tables
from batchai_cli.cli.job_file import cluster_file as _cluster_file
from batchai_cli.cli.node_exec import exec_options, run_on_node
from batchai_cli.cli.options import (
    cluster_option,
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
from batchai_cli.services import clusters

_NAME_HELP = "Name of cluster."


def _targets(app, ids, resource_group, workspace, name):
    return resolve_targets(
        app, "cluster", ids, resource_group, [("workspace", workspace, "--workspace"), ("cluster", name, "--name")]
    )


def mount_options(function):
    """--nfs/--afs-name/--bfs-name and the storage account options, shared with `job create`."""
    for decorator in reversed(
        [
            click.option("--nfs", "nfs", metavar="NAME_OR_ID", help="Name or ARM ID of a file server to mount."),
            click.option(
                "--nfs-mount-path", default="nfs", show_default=True, help="Relative mount path for the file server."
            ),
            click.option("--afs-name", help="Name of an Azure File share to mount."),
            click.option(
                "--afs-mount-path",
                default="afs",
                show_default=True,
                help="Relative mount path for the Azure File share.",
            ),
            click.option("--bfs-name", help="Name of an Azure Storage container to mount."),
            click.option(
                "--bfs-mount-path",
                default="bfs",
                show_default=True,
                help="Relative mount path for the Azure Storage container.",
            ),
            click.option(
                "--storage-account-name",
                help="Storage account for the Azure File share and/or container. "
                "Default: AZURE_BATCHAI_STORAGE_ACCOUNT.",
            ),
            click.option(
                "--storage-account-key", help="Key of the storage account. Default: AZURE_BATCHAI_STORAGE_KEY."
            ),
        ]
    ):
        function = decorator(function)
    return function


def file_server_id(app, value: str | None, resource_group: str, workspace: str) -> str | None:
    """--nfs takes a file server name (in this workspace) or its ARM id."""
    if not value:
        return None
    from batchai_cli import ids

    if value.startswith("/"):
        return str(ids.parse(value, expect="file-server"))
    from batchai_cli.services.workspaces import not_found, workspace_ref

    rid = workspace_ref(app.session, resource_group, workspace).child("file-server", ids.check_name(value))
    if app.session.state.get(rid) is None:
        raise not_found(rid)
    return str(rid)


@group()
def cluster() -> None:
    """Commands to manage clusters."""


@cluster.command("create", table=tables.clusters)
@resource_group_option()
@workspace_option()
@name_option("-n", "--name", kind="cluster", help=_NAME_HELP, required=True)
@click.option(
    "-f",
    "--config-file",
    type=click.Path(dir_okay=True),
    help="A JSON file with the cluster's "
    "parameters (cluster.json). Values given on the command line win over the file.",
)
@click.option(
    "--engine",
    type=click.Choice(clusters.ENGINES),
    help="Where the cluster's jobs run: local (slots on "
    "this machine, the default) or slurm. Default: the file's engine, else local.",
)
@click.option("-u", "--user-name", help="Name of the admin user account on the nodes. Default: the current user.")
@click.option(
    "-k", "--ssh-key", help="SSH public key value or path. Default: ~/.ssh/id_rsa.pub when no password is given."
)
@click.option("-p", "--password", help="Password for the admin user account.")
@click.option("--generate-ssh-keys", is_flag=True, help="Generate ~/.ssh/id_rsa[.pub] if missing.")
@click.option("-i", "--image", help="OS image: UbuntuLTS, UbuntuDSVM, or publisher:offer:sku:version.")
@click.option("--custom-image", help="ARM id of a virtual machine image; needs --image for the base image.")
@click.option("-s", "--vm-size", help="VM size of the nodes (e.g. Standard_NC6).")
@click.option("--vm-priority", type=click.Choice(["dedicated", "lowpriority"]), help="VM priority.")
@click.option("-t", "--target", type=click.IntRange(min=0), help="Number of nodes to allocate (manual scale).")
@click.option("--min", "min_nodes", type=click.IntRange(min=0), help="Minimum number of nodes (auto-scale).")
@click.option("--max", "max_nodes", type=click.IntRange(min=0), help="Maximum number of nodes (auto-scale).")
@click.option("--subnet", help="ARM id of a virtual network subnet for the nodes.")
@mount_options
@click.option(
    "--use-auto-storage",
    is_flag=True,
    help="Create the share batchaishare and the container batchaicontainer in the configured storage "
    "account and mount them at autoafs and autobfs, as az did (az also created the account through "
    "Azure Resource Manager, which batchai does not).",
)
@click.option("--setup-task", help="A command line run on each node after it is allocated.")
@click.option("--setup-task-output", help="Where the setup task's output goes; required with --setup-task.")
@pass_app
def create(app, resource_group, workspace, name, config_file, use_auto_storage, nfs, **options):
    """Create a cluster.

    \b
    Examples:
      Create a local cluster of two nodes.
        batchai cluster create -g MyResourceGroup -w MyWorkspace -n MyCluster -s Standard_NC6 -t 2 -p MyPassw0rd
      Create a cluster from cluster.json, mounting an Azure File share on every node.
        batchai cluster create -g MyResourceGroup -w MyWorkspace -n MyCluster -f cluster.json \\
            --afs-name MyShare --storage-account-name MyAccount
      Create an auto-scaling cluster.
        batchai cluster create -g MyResourceGroup -w MyWorkspace -n MyCluster -s Standard_NC6 --min 0 --max 4
    """
    (rid,) = _targets(app, (), resource_group, workspace, name)
    # The other options are build_cluster_request's keywords, under the same names.
    return clusters.create_cluster(
        app.session,
        rid,
        config_file=config_file,
        nfs_id=file_server_id(app, nfs, resource_group, workspace),
        use_auto_storage=use_auto_storage,
        **options,
    )


@cluster.command("show", table=tables.clusters)
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="cluster", help=_NAME_HELP)
@ids_option
@pass_app
def show(app, resource_group, workspace, name, ids):
    """Show information about a cluster.

    \b
    Examples:
      Show a cluster, with its node counts, as a table.
        batchai cluster show -g MyResourceGroup -w MyWorkspace -n MyCluster -o table
    """
    found = [clusters.get_cluster(app.session, rid) for rid in _targets(app, ids, resource_group, workspace, name)]
    return one_or_many(found)


@cluster.command("list", table=tables.clusters)
@resource_group_option()
@workspace_option()
@pass_app
def list_(app, resource_group, workspace):
    """List clusters in a workspace.

    \b
    Examples:
      List clusters.
        batchai cluster list -g MyResourceGroup -w MyWorkspace -o table
    """
    return clusters.list_clusters(app.session, workspace_target(app, resource_group, workspace))


@cluster.command("delete")
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="cluster", help=_NAME_HELP)
@ids_option
@no_wait_option
@yes_option
@pass_app
def delete(app, resource_group, workspace, name, ids, no_wait, yes):
    """Delete a cluster. Jobs queued or running on it are terminated.

    \b
    Examples:
      Delete a cluster without asking.
        batchai cluster delete -g MyResourceGroup -w MyWorkspace -n MyCluster -y
    """
    targets = _targets(app, ids, resource_group, workspace, name)
    confirm(skip=yes)
    for rid in targets:
        clusters.delete_cluster(app.session, rid)


@cluster.command("resize", table=tables.clusters)
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="cluster", help=_NAME_HELP)
@ids_option
@click.option("-t", "--target", type=click.IntRange(min=0), required=True, help="Target number of nodes.")
@pass_app
def resize(app, resource_group, workspace, name, ids, target):
    """Resize a cluster to a number of nodes (manual scale).

    \b
    Examples:
      Resize a cluster to four nodes.
        batchai cluster resize -g MyResourceGroup -w MyWorkspace -n MyCluster -t 4
    """
    done = [
        clusters.resize_cluster(app.session, rid, target) for rid in _targets(app, ids, resource_group, workspace, name)
    ]
    return one_or_many(done)


@cluster.command("auto-scale", table=tables.clusters)
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="cluster", help=_NAME_HELP)
@ids_option
@click.option("--min", "min_nodes", type=click.IntRange(min=0), required=True, help="Minimum number of nodes.")
@click.option("--max", "max_nodes", type=click.IntRange(min=0), required=True, help="Maximum number of nodes.")
@pass_app
def auto_scale(app, resource_group, workspace, name, ids, min_nodes, max_nodes):
    """Make a cluster scale between a minimum and a maximum number of nodes with its jobs.

    \b
    Examples:
      Scale between 0 and 4 nodes.
        batchai cluster auto-scale -g MyResourceGroup -w MyWorkspace -n MyCluster --min 0 --max 4
    """
    done = [
        clusters.auto_scale_cluster(app.session, rid, min_nodes, max_nodes)
        for rid in _targets(app, ids, resource_group, workspace, name)
    ]
    return one_or_many(done)


@cluster.group("node")
def node() -> None:
    """Commands to work with cluster nodes."""


@node.command("list", table=tables.remote_logins)
@resource_group_option()
@workspace_option()
@cluster_option()
@pass_app
def node_list(app, resource_group, workspace, cluster_name):
    """List the nodes of a cluster, with how to reach them.

    \b
    Examples:
      List the nodes of a cluster.
        batchai cluster node list -g MyResourceGroup -w MyWorkspace -c MyCluster -o table
    """
    (rid,) = _targets(app, (), resource_group, workspace, cluster_name)
    return clusters.list_remote_login_information(app.session, rid)


@node.command("exec")
@resource_group_option()
@workspace_option()
@cluster_option()
@exec_options
@pass_app
def node_exec(app, resource_group, workspace, cluster_name, command, node_id, forwards, _password, _ssh_key):
    """Run a command on a node of a cluster, or forward ports of it to this machine.

    The command runs with bash in the node's folder, with $AZ_BATCHAI_MOUNT_ROOT set; its output
    and exit code are the command's own. A forwarded port listens on 127.0.0.1 only.

    \b
    Examples:
      Run nvidia-smi on a node.
        batchai cluster node exec -g MyResourceGroup -w MyWorkspace -c MyCluster -n tvm-xxx --exec "nvidia-smi"
      Forward a node's port 9000 to a free local port, while a command runs on the node.
        batchai cluster node exec -g MyResourceGroup -w MyWorkspace -c MyCluster -L 0:localhost:9000 --exec "sleep 60"
    """
    from batchai_cli.services.nodeexec import cluster_target

    (rid,) = _targets(app, (), resource_group, workspace, cluster_name)
    return run_on_node(cluster_target(app.session, rid, node_id), command, forwards)


cluster.add_command(_cluster_file)
