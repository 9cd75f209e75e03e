"""The storage a job uses: its own and its cluster's mounted volumes (blob containers, file shares,
local folders), listed and browsed as `job file list` lists an output directory. The portal's
storage browser reads through here."""

from __future__ import annotations

from batchai_cli import ids
from batchai_cli.errors import NotFound
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session


def _volumes(session: Session, rid: ResourceId):
    from batchai_cli.services.jobs import get_job
    from batchai_cli.storage import paths

    get_job(session, rid)
    properties = session.state.get_private(rid).get("properties") or {}
    cluster_id = (properties.get("cluster") or {}).get("id")
    cluster = session.state.get_private(ids.parse(cluster_id, expect="cluster")).get("properties") if cluster_id else {}
    return paths.job_volumes(properties, cluster)


def list_job_volumes(session: Session, rid: ResourceId) -> list[dict]:
    """[{index, level, kind, mountPath, location}] for every volume the job sees; no credentials."""
    rows = []
    for index, volume in enumerate(_volumes(session, rid)):
        rows.append(
            {
                "index": index,
                "level": volume.level,
                "kind": volume.kind,
                "mountPath": volume.shown_as,
                "location": _location(volume),
            }
        )
    return rows


def _location(volume) -> str:
    """Where a volume's files are, in a word: account/container, the share's URL, the folder, the
    file server's export or folder, the mount command."""
    from batchai_cli.errors import BatchAIError
    from batchai_cli.storage import paths

    ref = volume.reference
    if volume.kind == "azureBlob":
        return f"{ref.get('accountName')}/{ref.get('containerName')}"
    if volume.kind == "fileServer":
        try:
            server = paths.file_server_source(volume)
        except BatchAIError:  # the file server is gone (or the reference is broken): its id says which
            return (ref.get("fileServer") or {}).get("id") or ""
        return f"file server {server.name}: {server.nfs_export or server.folder}"
    return ref.get("azureFileUrl") or ref.get("path") or ref.get("mountCommand") or ""


def list_volume_files(
    session: Session, rid: ResourceId, index: int, *, path: str = ".", expiry_minutes: int = 60
) -> list[dict]:
    """One folder of volume `index` of the job, as `job file list` rows (download URLs included).
    NotFound for an unknown index; UsageError for '..'; BatchAIError for a volume batchai cannot read."""
    from batchai_cli.services.files import Directory, _relative, iter_files

    directory = Directory(open_volume(session, rid, index), _relative(path, "the path"))
    return sorted(iter_files(directory, expiry_minutes=expiry_minutes), key=lambda row: row["name"])


def open_volume(session: Session, rid: ResourceId, index: int):
    """The Store behind volume `index` of the job. NotFound for an unknown index."""
    volumes = _volumes(session, rid)
    if not 0 <= index < len(volumes):
        raise NotFound(f'The job "{rid.name}" has no volume {index}; it has {len(volumes)}.')
    return volumes[index].open_store()
