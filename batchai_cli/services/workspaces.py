"""Workspaces: the top of the resource tree (resource group -> workspace -> clusters, experiments)."""

from __future__ import annotations

import os

from batchai_cli import ids, log, state
from batchai_cli.errors import AlreadyExists, InvalidState, NotFound
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session

DEFAULT_LOCATION = "local"


def normalize_location(location: str) -> str:
    """'East US' -> 'eastus', as ARM stores locations."""
    return location.replace(" ", "").lower()


def workspace_ref(session: Session, resource_group: str, name: str) -> ResourceId:
    ids.check_resource_group(resource_group)
    ids.check_name(name, "workspace")
    return ids.workspace_id(session.subscription, resource_group, name)


def not_found(rid: ResourceId, session: Session | None = None) -> NotFound:
    """The error for a missing resource of any kind, naming where it was looked for. With the
    session, about the first level that is missing (the workspace, when an experiment's job is
    asked for in a workspace that does not exist)."""
    if session is not None:
        level = rid
        while level.parent is not None:
            if session.state.get(level.parent) is not None:
                break
            level = level.parent
        rid = level
    group = f'resource group "{rid.resource_group}"'
    parents = rid.names[:-1]
    where = " in ".join(f'{kind} "{name}"' for kind, name in reversed(parents))
    where = f"{where} ({group})" if where else group
    flags = {"workspace": "-w", "experiment": "-e"}
    scope = f"-g {rid.resource_group}" + "".join(f" {flags[kind]} {name}" for kind, name in parents)
    return NotFound(
        f'The {rid.kind} "{rid.name}" was not found in {where}.',
        hint=f"See what exists with 'batchai {rid.kind} list {scope}'.",
    )


def create_workspace(session: Session, resource_group: str, name: str, *, location: str | None = None) -> dict:
    rid = workspace_ref(session, resource_group, name)
    if not location:
        # az took the resource group's location; here a group's location is that of its workspaces.
        siblings = session.state.list("workspace", subscription=session.subscription, resource_group=resource_group)
        location = siblings[0]["location"] if siblings else DEFAULT_LOCATION
        log.info("Using location '%s' for workspace '%s'.", location, name)
    stamp = state.now_iso()
    body = {
        "creationTime": stamp,
        "id": str(rid),
        "location": normalize_location(location),
        "name": name,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": stamp,
        "tags": None,
        "type": rid.type,
    }
    try:
        return session.state.create(rid, body)
    except state.DuplicateResource:
        raise AlreadyExists(
            f'A workspace named "{name}" already exists in resource group "{resource_group}".',
            hint=f"Use it as it is (batchai workspace show -g {resource_group} -n {name}) or choose another name.",
        ) from None


def get_workspace(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    return body


def list_workspaces(session: Session, *, resource_group: str | None = None) -> list[dict]:
    if resource_group:
        ids.check_resource_group(resource_group)
    return session.state.list("workspace", subscription=session.subscription, resource_group=resource_group)


def delete_workspace(session: Session, rid: ResourceId, *, force: bool = False) -> None:
    """Delete a workspace. One that still holds experiments, clusters or file servers is kept
    (they are named in the error) unless `force`, which deletes it with everything in it: its
    clusters as `cluster delete` does (their jobs terminated, setup tasks stopped, mounts released)
    and its experiments' jobs terminated first."""
    if force:
        from batchai_cli.services.clusters import delete_cluster
        from batchai_cli.services.experiments import delete_experiment

        if session.state.get(rid) is None:
            raise not_found(rid, session)
        for body in session.state.list("cluster", parent=rid):
            delete_cluster(session, ids.parse(body["id"]))
        for body in session.state.list("experiment", parent=rid):
            delete_experiment(session, ids.parse(body["id"]))
    try:
        session.state.delete(rid, recursive=force)
    except state.MissingResource:
        raise not_found(rid, session) from None
    except state.HasChildren as exc:
        held = ", ".join(f'{kind} "{name}"' for kind, name in exc.children)
        raise InvalidState(
            f'The workspace "{rid.name}" still holds {held}.',
            hint=f"Delete {'them' if len(exc.children) > 1 else 'it'} first, or pass --force to delete the workspace "
            "with everything in it.",
        ) from None
    if force:  # the folders of the file servers batchai served in it went with them
        import shutil

        from batchai_cli import settings
        from batchai_cli.storage.paths import FILE_SERVERS_FOLDER

        parts = (rid.resource_group.lower(), rid.name.lower())
        shutil.rmtree(os.path.join(settings.shared_root(), FILE_SERVERS_FOLDER, *parts), ignore_errors=True)
