"""`batchai file-server`: create, show, list and delete file servers (NFS storage for `--nfs`)."""

from __future__ import annotations

import click

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
from batchai_cli.services import fileservers

_NAME_HELP = "Name of file server."


def _targets(app, ids, resource_group, workspace, name):
    return resolve_targets(
        app,
        "file-server",
        ids,
        resource_group,
        [("workspace", workspace, "--workspace"), ("file-server", name, "--name")],
    )


@group("file-server")
def file_server() -> None:
    """Commands to manage file servers."""


@file_server.command("create", table=tables.file_servers)
@resource_group_option()
@workspace_option()
@name_option("-n", "--name", kind="file-server", help=_NAME_HELP, required=True)
@click.option(
    "-f",
    "--config-file",
    type=click.Path(dir_okay=False),
    help="A JSON file with the file server's parameters (file-server.json). Values given on the command line "
    "win over the file.",
)
@click.option("-s", "--vm-size", help="VM size of the file server (kept and shown; no VM is made).")
@click.option("--disk-count", type=int, help="Number of data disks (kept and shown).")
@click.option("--disk-size", type=int, help="Size of each data disk in GB (kept and shown).")
@click.option("--caching-type", type=click.Choice(["none", "readonly", "readwrite"]), help="Caching type of the disks.")
@click.option("--storage-sku", type=click.Choice(["Premium_LRS", "Standard_LRS"]), help="Storage SKU of the disks.")
@click.option("-u", "--user-name", help="Name of the admin user account. Default: the current user.")
@click.option(
    "-k", "--ssh-key", help="SSH public key value or path. Default: ~/.ssh/id_rsa.pub when no password is given."
)
@click.option("-p", "--password", help="Password for the admin user account.")
@click.option("--generate-ssh-keys", is_flag=True, help="Generate ~/.ssh/id_rsa[.pub] if missing.")
@click.option("--subnet", help="ARM id of a virtual network subnet (kept and shown).")
@click.option(
    "--nfs-export",
    metavar="HOST:/PATH",
    help="An NFS export you already have, which the nodes mount with the kernel's NFS client (they need "
    "nfs-common and root). Default: batchai serves a new folder, "
    "<shared folder>/fileservers/<group>/<workspace>/<name>/export, which nodes on this machine bind-mount "
    "and Slurm nodes reach through the $BATCHAI_HOME they share; nodes that do not share it need this option.",
)
@click.option(
    "--nfs-version",
    type=click.Choice(fileservers.NFS_VERSIONS),
    help="The NFS version nodes mount --nfs-export with (vers=). Default: the highest both sides speak.",
)
@no_wait_option
@pass_app
def create(app, resource_group, workspace, name, no_wait, **options):
    """Create a file server.

    \b
    Examples:
      Create a file server that batchai serves from a folder on this machine.
        batchai file-server create -g MyResourceGroup -w MyWorkspace -n MyNFS -s Standard_D14 \\
            --disk-count 2 --disk-size 10 --storage-sku Premium_LRS -u $USER -k ~/.ssh/id_rsa.pub
      Use an NFS export you already have, from file-server.json.
        batchai file-server create -g MyResourceGroup -w MyWorkspace -n MyNFS -f file-server.json \\
            --nfs-export 10.0.0.4:/exports/data
      Mount it on every node of a new cluster, at $AZ_BATCHAI_MOUNT_ROOT/nfs.
        batchai cluster create -g MyResourceGroup -w MyWorkspace -n MyCluster -s Standard_NC6 -t 2 --nfs MyNFS
    """
    (rid,) = _targets(app, (), resource_group, workspace, name)
    # The other options are build_file_server_request's keywords, under the same names.
    created = fileservers.create_file_server(app.session, rid, **options)
    return None if no_wait else created


@file_server.command("show", table=tables.file_servers)
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="file-server", help=_NAME_HELP)
@ids_option
@pass_app
def show(app, resource_group, workspace, name, ids):
    """Show information about a file server.

    \b
    Examples:
      Show a file server, with its disks and mount point, as a table.
        batchai file-server show -g MyResourceGroup -w MyWorkspace -n MyNFS -o table
    """
    found = [
        fileservers.get_file_server(app.session, rid) for rid in _targets(app, ids, resource_group, workspace, name)
    ]
    return one_or_many(found)


@file_server.command("list", table=tables.file_servers)
@resource_group_option()
@workspace_option()
@pass_app
def list_(app, resource_group, workspace):
    """List file servers in a workspace.

    \b
    Examples:
      List file servers.
        batchai file-server list -g MyResourceGroup -w MyWorkspace -o table
    """
    return fileservers.list_file_servers(app.session, workspace_target(app, resource_group, workspace))


@file_server.command("delete")
@resource_group_option(required=False)
@workspace_option(required=False)
@name_option("-n", "--name", kind="file-server", help=_NAME_HELP)
@ids_option
@no_wait_option
@yes_option
@pass_app
def delete(app, resource_group, workspace, name, ids, no_wait, yes):
    """Delete a file server. Refused while a cluster or a queued or running job mounts it.

    A file server batchai serves is deleted with its folder and everything in it, as Batch AI
    deleted a file server's data disks; an --nfs-export is left as it is.

    \b
    Examples:
      Delete a file server without asking.
        batchai file-server delete -g MyResourceGroup -w MyWorkspace -n MyNFS -y
    """
    targets = _targets(app, ids, resource_group, workspace, name)
    confirm(skip=yes)
    for rid in targets:
        fileservers.delete_file_server(app.session, rid)
