"""File servers: NFS storage that jobs and clusters mount (mountVolumes.fileServers, `--nfs`).

Batch AI made a file server a VM with data disks exported over NFS. Here a file server is one of:

- a folder batchai serves from this machine (the default): <shared folder>/fileservers/<group>/
  <workspace>/<name>/export, owner-only. Nodes on this machine bind-mount it (or link it, without
  root); Slurm nodes reach it through $BATCHAI_HOME, which they share. No NFS daemon runs: Debian
  12 has no unfs3, and what its userspace nfs-ganesha served no node here could mount, as the
  kernel has no NFS client (and a container cannot load one);
- an NFS export the user already has (`--nfs-export HOST:/path`), mounted on each node with the
  kernel's NFS client.

vmSize, dataDisks, sshConfiguration and subnet are checked as az checked them, kept and shown; no VM
or disk is made. Every node reads a record of the server (fileserver.json, beside its folder),
because nodes never open state.db and a job names its file servers by id only.
"""

from __future__ import annotations

import json
import os
import shutil

from batchai_cli import ids, log, models, state
from batchai_cli.errors import AlreadyExists, InvalidState, UsageError
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session
from batchai_cli.services.workspaces import not_found, workspace_ref

NFS_VERSIONS = ("3", "4", "4.0", "4.1", "4.2")

# The az shape (the SDK's FileServer, attribute names camelCased): every property, null when unset.
FILE_SERVER = {
    "creationTime": None,
    "dataDisks": {"cachingType": None, "diskCount": None, "diskSizeInGb": None, "storageAccountType": None},
    "id": None,
    "mountSettings": {"fileServerInternalIp": None, "fileServerPublicIp": None, "mountPoint": None},
    "name": None,
    "provisioningState": None,
    "provisioningStateTransitionTime": None,
    "sshConfiguration": {
        "publicIpsToAllow": None,
        "userAccountSettings": {"adminUserName": None, "adminUserPassword": None, "adminUserSshPublicKey": None},
    },
    "subnet": None,
    "type": None,
    "vmSize": None,
}


def file_server_ref(session: Session, resource_group: str, workspace: str, name: str) -> ResourceId:
    ids.check_name(name, "file server")
    return workspace_ref(session, resource_group, workspace).child("file-server", name)


def parse_nfs_export(value: str) -> tuple[str, str]:
    """(host, absolute path) of HOST:/path. UsageError for anything else."""
    host, sep, path = value.strip().partition(":/")
    if not (host and sep) or any(c.isspace() for c in value.strip()):
        raise UsageError(
            f"--nfs-export must be HOST:/path, the NFS export the nodes mount (e.g. 10.0.0.4:/exports/data), "
            f"not '{value}'."
        )
    return host, "/" + path.rstrip("/") if path.rstrip("/") else "/"


def create_file_server(
    session: Session,
    rid: ResourceId,
    *,
    config_file: str | None = None,
    nfs_export: str | None = None,
    nfs_version: str | None = None,
    **options,
) -> dict:
    """Create a file server from -f file-server.json and/or options, checked as az checked them.

    `options` are build_file_server_request's keywords (vm_size, disk_count, disk_size, caching_type,
    storage_sku, user_name, ssh_key, password, generate_ssh_keys, subnet). Without nfs_export,
    batchai serves a new folder; with it, nodes mount that export.
    """
    from batchai_cli.config import build_file_server_request, format_problem

    if session.state.get(rid.parent) is None:
        raise not_found(rid.parent, session)
    if session.state.get(rid) is not None:
        raise _exists(rid)
    export = ":".join(parse_nfs_export(nfs_export)) if nfs_export else None
    if nfs_version and not export:
        raise UsageError("--nfs-version applies to --nfs-export only: a folder batchai serves is not mounted over NFS.")
    if nfs_version and nfs_version not in NFS_VERSIONS:
        raise UsageError(
            f"'{nfs_version}' is not a valid value for '--nfs-version'. Choose one of: {', '.join(NFS_VERSIONS)}."
        )
    request, warnings = build_file_server_request(config_file, **options)
    for problem in warnings:
        log.warning("%s", format_problem(problem, config_file))
    properties = request["properties"]
    folder = _served_folder(rid) if export is None else None
    stamp = state.now_iso()
    body = {
        **_az_shape(properties),
        "creationTime": stamp,
        "id": str(rid),
        "mountSettings": _mount_settings(export, folder),
        "name": rid.name,
        "nfsExport": export,
        "nfsVersion": nfs_version,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": stamp,
        "type": rid.type,
    }
    _write_record(rid, {"id": str(rid), "nfsExport": export, "nfsVersion": nfs_version, "folder": folder})
    try:
        session.state.create(rid, models.without_secrets(body), private={"properties": properties})
    except state.DuplicateResource:  # created a moment ago by another process, with this very record
        raise _exists(rid) from None
    except state.MissingParent:
        _remove_record(rid)
        raise not_found(rid.parent, session) from None
    return get_file_server(session, rid)


def _az_shape(properties: dict) -> dict:
    """The request's properties under az's output names (diskSizeInGb, publicIpsToAllow)."""
    shaped = json.loads(json.dumps(properties))
    disks = shaped.get("dataDisks") or {}
    if "diskSizeInGB" in disks:
        disks["diskSizeInGb"] = disks.pop("diskSizeInGB")
    disks.setdefault("cachingType", "none")  # the SDK's default, which az sent
    ssh = shaped.get("sshConfiguration") or {}
    if "publicIPsToAllow" in ssh:
        ssh["publicIpsToAllow"] = ssh.pop("publicIPsToAllow")
    return shaped


def _mount_settings(export: str | None, folder: str | None) -> dict:
    """mountSettings as Batch AI reported them: where the data is, and the address nodes use."""
    if export:
        host, _, path = export.partition(":")
        return {"fileServerInternalIp": host, "fileServerPublicIp": host, "mountPoint": path}
    return {"fileServerInternalIp": "127.0.0.1", "fileServerPublicIp": None, "mountPoint": folder}


def _served_folder(rid: ResourceId) -> str:
    from batchai_cli.storage.paths import SERVED_FOLDER, file_server_dir

    return os.path.join(file_server_dir(str(rid)), SERVED_FOLDER)


def _write_record(rid: ResourceId, record: dict) -> None:
    """The file server's folder (if served) and its record for the nodes, owner-only, written
    atomically (a node never reads half a record)."""
    from batchai_cli import private
    from batchai_cli.storage.paths import FILE_SERVER_RECORD, file_server_dir

    folder = file_server_dir(str(rid))
    private.makedirs(record["folder"] or folder)
    private.write_whole(os.path.join(folder, FILE_SERVER_RECORD), json.dumps(record))


def _remove_record(rid: ResourceId) -> None:
    from batchai_cli.storage.paths import file_server_dir

    shutil.rmtree(file_server_dir(str(rid)), ignore_errors=True)


def _exists(rid: ResourceId) -> AlreadyExists:
    # az said '"x" already exists in "rg" resource group under ws resource group.' (sic).
    return AlreadyExists(
        f'"{rid.name}" already exists in workspace "{rid.get("workspace")}" (resource group "{rid.resource_group}").',
        hint="Choose another name, or delete the existing file server first.",
    )


def get_file_server(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    return models.present(body, FILE_SERVER)


def list_file_servers(session: Session, workspace: ResourceId) -> list[dict]:
    if session.state.get(workspace) is None:
        raise not_found(workspace, session)
    return [models.present(body, FILE_SERVER) for body in session.state.list("file-server", parent=workspace)]


def users_of(session: Session, rid: ResourceId) -> list[str]:
    """What mounts the file server now: clusters whose nodeSetup mounts it (they keep it mounted for
    their nodes' life), and jobs queued or running that mount it; e.g. 'job "j1" (experiment "exp", running)'."""
    from batchai_cli.services.jobs import TERMINAL, get_job

    found = []
    for body in session.state.list("cluster", subscription=rid.subscription):
        cluster = ids.parse(body["id"], expect="cluster")
        properties = session.state.get_private(cluster).get("properties") or {}
        if _mounts(((properties.get("nodeSetup") or {}).get("mountVolumes")), rid):
            found.append(f'cluster "{cluster.name}" (workspace "{cluster.get("workspace")}")')
    for run in session.state.runs():
        job_id = session.state.get_key_id(run["job_key"])
        if job_id is None:
            continue
        job = ids.parse(job_id, expect="job")
        if not _mounts((session.state.get_private(job).get("properties") or {}).get("mountVolumes"), rid):
            continue
        current = get_job(session, job)["executionState"]  # folds in what its agents reported
        if current not in TERMINAL:
            found.append(f'job "{job.name}" (experiment "{job.get("experiment")}", {current})')
    return found


def _mounts(mount_volumes: dict | None, rid: ResourceId) -> bool:
    return any(
        ((ref.get("fileServer") or {}).get("id") or "").lower() == rid.key
        for ref in (mount_volumes or {}).get("fileServers") or []
    )


def delete_file_server(session: Session, rid: ResourceId) -> None:
    """Delete a file server. Refused while a cluster or a queued or running job mounts it. A folder
    batchai serves goes with everything in it (as a Batch AI file server's data disks did); an NFS
    export is left as it is."""
    if session.state.get(rid) is None:
        raise not_found(rid, session)
    users = users_of(session, rid)
    if users:
        raise InvalidState(
            f'The file server "{rid.name}" is mounted by {", ".join(users)}.',
            hint="Wait for the jobs to end (or terminate them) and delete the clusters that mount it, then "
            "delete the file server.",
        )
    try:
        session.state.delete(rid)
    except state.MissingResource:
        raise not_found(rid, session) from None
    _remove_record(rid)
