"""Job paths to storage: `$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/logs` -> the `afs` volume's Store, key `logs`.

A job names places by where they appear on its nodes: under a job-level mount
(`$AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath>`), a cluster-level mount
(`$AZ_BATCHAI_MOUNT_ROOT/<relativeMountPath>`), or a plain folder on the machine (`/data/out`,
the embedded default that needs no storage account). The agent writes logs and outputs through
the Store this resolves to, and `job file list/stream` read through the same Store, so neither
needs the node, as with the Batch AI service.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from batchai_cli.errors import BatchAIError
from batchai_cli.storage.base import Store

JOB_ROOT = "AZ_BATCHAI_JOB_MOUNT_ROOT"
CLUSTER_ROOT = "AZ_BATCHAI_MOUNT_ROOT"


@dataclass(frozen=True)
class Volume:
    """One mounted volume of a job: where it appears (level + relative path) and what it is."""

    level: str  # "job" or "cluster"
    relative_mount_path: str
    kind: str  # "azureFileShare", "azureBlob", "localFolder", "fileServer", "unmanaged"
    reference: dict  # the mountVolumes entry, credentials included

    @property
    def root_variable(self) -> str:
        return JOB_ROOT if self.level == "job" else CLUSTER_ROOT

    @property
    def shown_as(self) -> str:
        return f"${self.root_variable}/{self.relative_mount_path}"

    @property
    def remote(self) -> bool:
        """True for storage reached over the network (staged or mounted on the node)."""
        return self.kind in ("azureFileShare", "azureBlob")

    def open_store(self, env: Mapping[str, str] | None = None) -> Store:
        """The Store behind this volume. BatchAIError for kinds that cannot be read directly."""
        from batchai_cli.storage import open_store

        ref = self.reference
        if self.kind == "localFolder":
            return open_store(ref["path"])
        if self.kind == "fileServer":
            source = file_server_source(self)
            if source.folder:
                return open_store(source.folder)
        if self.kind in ("azureFileShare", "azureBlob"):
            account = ref.get("accountName")
            credentials = volume_credentials(account, (ref.get("credentials") or {}).get("accountKey"), env)
            if self.kind == "azureFileShare":
                share = (ref.get("azureFileUrl") or "").rstrip("/").rsplit("/", 1)[-1]
                return open_store(f"azurefile://{share}", credentials)
            return open_store(f"azureblob://{ref['containerName']}", credentials)
        raise BatchAIError(
            f"{self.shown_as} is {_unreadable_kind(self)} mount, which batchai cannot read or write directly.",
            hint="Put stdout/stderr and output directories on an Azure File share, a blob container or a local folder.",
        )


def _unreadable_kind(volume: Volume) -> str:
    if volume.kind == "fileServer":
        return f"an NFS file server ({file_server_source(volume).location})"
    return "an unmanaged file system"


# -- file servers -----------------------------------------------------------------------------------
# `batchai file-server create` (services/fileservers.py) writes a record of each file server where
# every node can read it, beside the folder it serves: nodes never open state.db, and a job's
# mountVolumes.fileServers[] names a file server by its id only.

FILE_SERVERS_FOLDER = "fileservers"
FILE_SERVER_RECORD = "fileserver.json"
SERVED_FOLDER = "export"


@dataclass(frozen=True)
class FileServerSource:
    """Where a file server reference's files are: a folder batchai serves on this machine, or an
    NFS export (HOST:/path) the user already has; sourceDirectory is applied."""

    id: str
    folder: str | None  # the served folder (or its sourceDirectory), for nodes on this machine
    nfs_export: str | None  # HOST:/path (or HOST:/path/sourceDirectory)
    nfs_version: str | None  # the vers= to mount with; None lets mount.nfs negotiate

    @property
    def name(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def location(self) -> str:
        return f"NFS export {self.nfs_export}" if self.nfs_export else f"folder {self.folder}"


def file_server_dir(file_server_id: str) -> str:
    """<shared folder>/fileservers/<group>/<workspace>/<name>: a file server's record and, for one
    batchai serves, its folder (export/). In the shared folder (settings.shared_root()), so every
    node of a Slurm cluster sees it where the CLI does. Lower case, as ARM ids compare
    case-insensitively."""
    from batchai_cli import ids, settings

    rid = ids.parse(file_server_id, expect="file-server")
    parts = (rid.resource_group, rid.get("workspace"), rid.name)
    return os.path.join(settings.shared_root(), FILE_SERVERS_FOLDER, *(part.lower() for part in parts))


def read_file_server_record(file_server_id: str) -> dict | None:
    """The record `file-server create` wrote for this id; None when there is none (deleted, never
    created, or the shared folder is not shared with this node)."""
    import json

    try:
        with open(os.path.join(file_server_dir(file_server_id), FILE_SERVER_RECORD)) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if str(record.get("id", "")).lower() == file_server_id.lower() else None


def file_server_source(volume: Volume) -> FileServerSource:
    """Where a fileServers[] reference's files are. BatchAIError when the reference has no id,
    its sourceDirectory leaves the server, or no file server has that id (on this node)."""
    ref = volume.reference
    file_server_id = ((ref.get("fileServer") or {}).get("id") or "").strip()
    if not file_server_id:
        raise BatchAIError(f"The file server mounted at {volume.shown_as} has no fileServer.id.")
    record = read_file_server_record(file_server_id)
    if record is None:
        raise BatchAIError(
            f"No file server {file_server_id} was found (no {FILE_SERVER_RECORD} in "
            f"{file_server_dir(file_server_id)}).",
            hint="Create it with 'batchai file-server create', or correct the id in mountVolumes.fileServers "
            "(on a Slurm node, the shared folder must be on a file system the nodes share).",
        )
    source = (ref.get("sourceDirectory") or "").strip("/")
    source = posixpath.normpath(source) if source else ""
    if source.startswith(".."):
        raise BatchAIError(
            f"The sourceDirectory '{ref.get('sourceDirectory')}' of {volume.shown_as} leaves its file server."
        )
    export = record.get("nfsExport")
    if export:
        host, _, path = export.partition(":")
        return FileServerSource(
            record["id"], None, f"{host}:{posixpath.join(path, source) if source else path}", record.get("nfsVersion")
        )
    folder = record["folder"]
    return FileServerSource(record["id"], os.path.join(folder, source) if source else folder, None, None)


def volume_credentials(account: str | None, key: str | None, env: Mapping[str, str] | None = None):
    """Credentials for a mount's storage account: its own key, with the endpoints the environment
    gives for that account (AZURE_STORAGE_CONNECTION_STRING), so emulators work as Azure does."""
    from batchai_cli.storage.credentials import StorageCredentials, resolve_credentials

    base = resolve_credentials(account_name=account, environ=os.environ if env is None else env)
    return StorageCredentials(
        account_name=account,
        account_key=key or base.account_key,
        sas_token=None if key else base.sas_token,
        blob_endpoint=base.blob_endpoint,
        file_endpoint=base.file_endpoint,
        protocol=base.protocol,
        endpoint_suffix=base.endpoint_suffix,
        source="the job's mountVolumes",
    )


def volume_endpoint(volume: Volume, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(the endpoint an Azure volume's account is reached at, where it comes from): the connection
    string's BlobEndpoint/FileEndpoint when it names the account, else Azure's public default.

    BatchAIError when the public default cannot be meant: the connection string names the account
    with the other service's endpoint only (an Azurite string used for a File share), or the account
    is the emulators' devstoreaccount1, which has no public endpoint. Without this check such a job
    failed on its node, half a minute later, with a host name that does not resolve.
    """
    from batchai_cli.storage.credentials import AZURITE_ACCOUNT

    service, name = ("file", "FileEndpoint") if volume.kind == "azureFileShare" else ("blob", "BlobEndpoint")
    account = volume.reference.get("accountName") or ""
    credentials = volume_credentials(account, (volume.reference.get("credentials") or {}).get("accountKey"), env)
    given = credentials.file_endpoint if service == "file" else credentials.blob_endpoint
    if given:
        return given.rstrip("/"), f"{name} of AZURE_STORAGE_CONNECTION_STRING"
    public = f"{credentials.protocol}://{account}.{service}.{credentials.endpoint_suffix}"
    other = credentials.blob_endpoint if service == "file" else credentials.file_endpoint
    what = "Azure File share" if service == "file" else "blob container"
    if other or account == AZURITE_ACCOUNT:
        because = (
            f"AZURE_STORAGE_CONNECTION_STRING names it with {'BlobEndpoint' if service == 'file' else 'FileEndpoint'}"
            f" but no {name}"
            if other
            else "that is the emulators' account, which has no public endpoint"
        )
        raise BatchAIError(
            f'The {what} at {volume.shown_as} is on storage account "{account}", and {because}: it would be '
            f"reached at the public {public}, which cannot be meant.",
            hint=f"Add {name}=<its URL> to AZURE_STORAGE_CONNECTION_STRING (`batchai emulators start` prints one "
            "naming both emulators).",
        )
    return public, "the public default"


def check_endpoints(volumes: list[Volume], env: Mapping[str, str] | None = None) -> list[str]:
    """One line per Azure volume saying which endpoint it uses and why, and per file server where
    its files are; BatchAIError as volume_endpoint() and file_server_source() raise it, for the
    first volume that has no usable endpoint or names no file server (caught at `job create`,
    not on the node)."""
    lines = []
    for volume in volumes:
        if volume.remote:
            endpoint, source = volume_endpoint(volume, env)
            lines.append(f"{volume.shown_as}: {endpoint} ({source})")
        elif volume.kind == "fileServer":
            server = file_server_source(volume)
            lines.append(f"{volume.shown_as}: file server {server.name} ({server.location})")
    return lines


_KINDS = {
    "azureFileShares": "azureFileShare",
    "azureBlobFileSystems": "azureBlob",
    "localFolders": "localFolder",
    "fileServers": "fileServer",
    "unmanagedFileSystems": "unmanaged",
}


def job_volumes(job_properties: dict, cluster_properties: dict | None = None) -> list[Volume]:
    """Every volume a job sees: its own (job level), then its cluster's (cluster level)."""
    volumes = []
    for level, mounts in (
        ("job", job_properties.get("mountVolumes")),
        ("cluster", ((cluster_properties or {}).get("nodeSetup") or {}).get("mountVolumes")),
    ):
        for key, kind in _KINDS.items():
            for ref in (mounts or {}).get(key) or []:
                volumes.append(Volume(level, ref["relativeMountPath"].strip("/"), kind, ref))
    return volumes


def expand(path: str, values: Mapping[str, str]) -> str:
    """Replace $NAME and ${NAME} for the names in `values`; other text is left as it is."""
    for name in sorted(values, key=len, reverse=True):
        path = path.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return path


def split_root(path: str) -> tuple[str | None, str]:
    """('job' | 'cluster' | None, the rest) for a path that starts with a mount root variable."""
    for level, name in (("job", JOB_ROOT), ("cluster", CLUSTER_ROOT)):
        for form in ("${" + name + "}", "$" + name):
            if path == form or path.startswith(form + "/"):
                return level, path[len(form) :].strip("/")
    return None, path


def resolve(path: str, volumes: list[Volume], env: Mapping[str, str] | None = None) -> tuple[Store, str]:
    """The Store and key for a job path (a stdOutErrPathPrefix, an output pathPrefix...).

    BatchAIError when the path is under a mount root but on no volume, or is neither a mount
    path nor an absolute local folder.
    """
    from batchai_cli.storage import open_store

    level, rest = split_root(path.strip())
    if level is None:
        local = os.path.expanduser(path.strip())
        if not os.path.isabs(local):
            raise BatchAIError(
                f"'{path}' is neither under $AZ_BATCHAI_JOB_MOUNT_ROOT or $AZ_BATCHAI_MOUNT_ROOT nor an absolute "
                "folder on this machine.",
                hint="Use a mounted volume ($AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath>/...) or an absolute path.",
            )
        return open_store(local), ""
    rest = posixpath.normpath(rest) if rest else ""
    if rest.startswith(".."):
        raise BatchAIError(f"'{path}' leaves its mount root.")
    best: Volume | None = None
    for volume in volumes:
        mount = volume.relative_mount_path
        if (
            volume.level == level
            and (rest == mount or rest.startswith(mount + "/"))
            and (best is None or len(mount) > len(best.relative_mount_path))
        ):
            best = volume
    if best is None:
        known = ", ".join(v.shown_as for v in volumes if v.level == level) or "none"
        raise BatchAIError(
            f"'{path}' is not on any volume mounted at the {'job' if level == 'job' else 'cluster'} level "
            f"(mounted: {known}).",
            hint="Add the volume to mountVolumes, or correct the path.",
        )
    key = rest[len(best.relative_mount_path) :].strip("/")
    return best.open_store(env), key
