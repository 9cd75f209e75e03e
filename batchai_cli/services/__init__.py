"""The operations behind the commands, as functions returning data (az's SDK verbs: create_*,
get_*, list_*, delete_*). They raise errors from batchai_cli.errors and never print or exit.

Every operation takes a Session: the state store and the subscription id of this invocation.
"""

from __future__ import annotations

import os

from batchai_cli.state import State


class Session:
    """The state store and the subscription id one invocation works in."""

    def __init__(self, state: State, subscription: str):
        self.state = state
        self.subscription = subscription

    def close(self) -> None:
        self.state.close()


def open_session() -> Session:
    from batchai_cli import settings
    from batchai_cli.state import open_state

    state = open_state()
    return Session(state=state, subscription=settings.subscription_id())


def complete_names(kind: str, params: dict) -> list[str]:
    """Names for shell completion of `kind`, narrowed by the -g/-w/-e already on the line.

    Reads the state only if it exists (completion must never create $BATCHAI_HOME).
    """
    from batchai_cli import ids, settings
    from batchai_cli.state import STATE_FILE, State

    path = os.path.join(settings.home(), STATE_FILE)
    if not os.path.isfile(path):
        return []
    state = State(path)
    try:
        sub = settings.subscription_id()
        group = params.get("resource_group") or settings.get_default("group")
        if kind == "group":
            return sorted({w["resourceGroup"] for w in _workspaces_with_groups(state, sub)})
        if kind == "workspace":
            return state.names("workspace", subscription=sub, resource_group=group)
        workspace = params.get("workspace") or settings.get_default("workspace")
        if not (group and workspace):
            return []
        parent = ids.workspace_id(sub, group, workspace)
        if kind in ("job", "output_directory", "job_file"):
            experiment = params.get("experiment") or settings.get_default("experiment")
            if not experiment:
                return []
            parent = parent.child("experiment", experiment)
        if kind in ("output_directory", "job_file"):
            return _job_completions(Session(state, sub), parent.child("job", params.get("name") or ""), kind, params)
        return state.names(kind, parent=parent)
    finally:
        state.close()


def _job_completions(session: Session, job, kind: str, params: dict) -> list[str]:
    """`-d`: stdouterr and the job's output directory ids; `-f`: the names of the files in the
    directory that -d and -p name (read from storage, as `job file list` does)."""
    from batchai_cli.services import files

    body = session.state.get(job) if job.name else None
    if body is None:
        return []
    if kind == "output_directory":
        return [files.STDOUTERR, *(o["id"] for o in body.get("outputDirectories") or [])]
    listed = files.list_files(
        session,
        job,
        output_directory_id=params.get("output_directory_id") or files.STDOUTERR,
        path=params.get("path") or ".",
    )
    return [item["name"] for item in listed if item["fileType"] == "file"]


def _workspaces_with_groups(state: State, subscription: str) -> list[dict]:
    from batchai_cli.ids import resource_group_of

    return [{"resourceGroup": resource_group_of(w["id"])} for w in state.list("workspace", subscription=subscription)]
