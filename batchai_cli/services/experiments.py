"""Experiments: named groups of jobs inside a workspace."""

from __future__ import annotations

from batchai_cli import ids, state
from batchai_cli.errors import AlreadyExists, NotFound
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session
from batchai_cli.services.workspaces import not_found, workspace_ref


def experiment_ref(session: Session, resource_group: str, workspace: str, name: str) -> ResourceId:
    ids.check_name(name, "experiment")
    return workspace_ref(session, resource_group, workspace).child("experiment", name)


def create_experiment(session: Session, rid: ResourceId) -> dict:
    stamp = state.now_iso()
    body = {
        "creationTime": stamp,
        "id": str(rid),
        "name": rid.name,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": stamp,
        "type": rid.type,
    }
    try:
        return session.state.create(rid, body)
    except state.MissingParent:
        raise not_found(rid.parent, session) from None
    except state.DuplicateResource:
        raise AlreadyExists(
            f'An experiment named "{rid.name}" already exists in workspace "{rid.get("workspace")}" '
            f'(resource group "{rid.resource_group}").',
            hint="Choose another name, or delete the existing experiment first.",
        ) from None


def get_experiment(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    return body


def list_experiments(session: Session, workspace: ResourceId) -> list[dict]:
    if session.state.get(workspace) is None:
        raise not_found(workspace, session)
    return session.state.list("experiment", parent=workspace)


def delete_experiment(session: Session, rid: ResourceId) -> None:
    """Delete an experiment and its jobs, as Batch AI did; running and queued ones are terminated
    first, as `job delete` does."""
    from batchai_cli.services.jobs import terminate_job

    if session.state.get(rid) is None:
        raise not_found(rid, session)
    for body in session.state.list("job", parent=rid):
        terminate_job(session, ids.parse(body["id"]))
    try:
        session.state.delete(rid, recursive=True)
    except state.MissingResource:
        raise not_found(rid, session) from None


__all__ = ["NotFound", "create_experiment", "delete_experiment", "experiment_ref", "get_experiment", "list_experiments"]
