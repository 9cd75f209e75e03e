"""From a file plus command-line options to the complete request, as `az batchai ... create` built it.

`build_job_request` is here; clusters and file servers, which share the admin account and node
options, are in nodes.py. Every request ends the same way (RequestBuilder.finish): the defaults the
spec declares are filled in and the result is validated against the submit-level schema, so what
leaves this module is complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from batchai_cli.config import checks, mounts
from batchai_cli.config.document import load_document
from batchai_cli.config.issues import Issue, Locator, sort_problems
from batchai_cli.config.schemas import CURRENT, load_schema, prune_unknown, schema_id
from batchai_cli.config.validation import check_schema
from batchai_cli.errors import BatchAIError, ConfigProblem, InvalidConfig

MSG_NO_CLUSTER = "Please provide cluster information via command line or configuration file."


class RequestBuilder:
    """A request under construction: the file's data (or nothing), and how to report a problem in it."""

    def __init__(self, path: str | os.PathLike | None, kind: str, *, strict: bool = False):
        self.kind = kind
        self.file = None if path is None else str(path)
        self.warnings: list[ConfigProblem] = []
        if path is None:
            self.request: dict = {"properties": {}}
            self.locator = Locator(None)
            return
        document = load_document(path, kind, strict=strict)
        root = load_schema(schema_id(CURRENT, kind))
        # What az sent: the fields its models knew. Unknown keys were warned about when loading.
        self.request = prune_unknown(document.data, root["then"], root)
        for key in ("$schema", "$comment"):
            self.request.pop(key, None)
            self.request["properties"].pop(key, None)
        self.locator = document.locator
        self.warnings = document.warnings + document.notes

    @property
    def properties(self) -> dict:
        return self.request["properties"]

    def invalid(self, issues: list[Issue], *, hint: str | None = None, summary: str | None = None) -> InvalidConfig:
        problems = self.locator.problems(issues)
        errors = [problem for problem in problems if problem.severity == "error"]
        summary = summary or (errors[0].message if errors else f"{self.file} cannot be used.")
        # The file's warnings too: an unknown key is often why a value seems missing.
        everything = sort_problems(problems + [w for w in self.warnings if w.severity == "warning"])
        return InvalidConfig(summary, everything, file=self.file, hint=hint)

    def patch_mounts(self, volumes_path: tuple, storage: mounts.Storage) -> None:
        holder = self._holder(volumes_path[:-1])
        if holder is None or not isinstance(holder.get(volumes_path[-1]), dict):
            return
        holder[volumes_path[-1]] = mounts.patch_mount_volumes(holder[volumes_path[-1]], storage, volumes_path)
        if storage.issues:
            hint = storage.hints[0] if storage.hints else None
            raise self.invalid(storage.issues, hint=hint, summary=storage.summary or None)

    def add_option_mounts(self, volumes_path: tuple, storage: mounts.Storage, **options) -> None:
        holder = self._holder(volumes_path[:-1])
        existing = holder.get(volumes_path[-1]) if holder is not None else None
        volumes, added = mounts.add_option_mounts(existing, storage, **options)
        if not added:
            return
        self._holder(volumes_path[:-1], create=True)[volumes_path[-1]] = volumes
        conflicts = checks.mount_paths(volumes, volumes_path, added)
        if conflicts:
            raise self.invalid(conflicts)

    def _holder(self, path: tuple, *, create: bool = False) -> dict | None:
        node = self.request
        for part in path:
            node = node.setdefault(part, {}) if create else node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                return None
        return node

    def finish(self) -> tuple[dict, list[ConfigProblem]]:
        _fill_defaults(self.kind, self.properties)
        _, issues = check_schema(self.request, CURRENT, self.kind, level="submit")
        errors = [issue for issue in issues if issue.severity == "error"]
        if errors:
            name = self.file or "the command line"
            raise self.invalid(
                errors, summary=f"The {self.kind} request built from {name} is not complete: {errors[0].message}"
            )
        return self.request, self.warnings


def _fill_defaults(kind: str, properties: dict) -> None:
    """The defaults the 2018-05-01 spec declares, written out so engines need not know them."""
    if kind == "job":
        properties.setdefault("schedulingPriority", "normal")
        constraints = properties.setdefault("constraints", {})
        constraints.setdefault("maxWallClockTime", "7.00:00:00")
        for share in (properties.get("mountVolumes") or {}).get("azureFileShares") or []:
            share.setdefault("fileMode", "0777")
            share.setdefault("directoryMode", "0777")
    elif kind == "cluster":
        properties.setdefault("vmPriority", "dedicated")
        properties.setdefault("engine", {"type": "local"}).setdefault("type", "local")
        scale = properties.get("scaleSettings") or {}
        if isinstance(scale.get("manual"), dict):
            scale["manual"].setdefault("nodeDeallocationOption", "requeue")
        if isinstance(scale.get("autoScale"), dict):
            scale["autoScale"].setdefault("initialNodeCount", 0)
        for share in ((properties.get("nodeSetup") or {}).get("mountVolumes") or {}).get("azureFileShares") or []:
            share.setdefault("fileMode", "0777")
            share.setdefault("directoryMode", "0777")
    elif isinstance(properties.get("dataDisks"), dict):
        properties["dataDisks"].setdefault("cachingType", "none")


def build_job_request(
    path: str | os.PathLike,
    *,
    cluster_id: str | None,
    storage_account_name: str | None = None,
    storage_account_key: str | None = None,
    nfs_id: str | None = None,
    nfs_mount_path: str | None = "nfs",
    afs_name: str | None = None,
    afs_mount_path: str | None = "afs",
    bfs_name: str | None = None,
    bfs_mount_path: str | None = "bfs",
    strict: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[dict, list[ConfigProblem]]:
    """The complete `{"properties": {...}}` body of `job create -f path -c cluster_id ...`, and its warnings.

    As az (`custom.create_job`): the cluster id from the option (else the file's cluster.id), the
    file's mountVolumes patched (placeholders from the options or AZURE_BATCHAI_STORAGE_ACCOUNT/KEY,
    accountName from azureFileUrl), then --nfs, --afs-name and --bfs-name mounted, in that order.
    nfs_id is the file server's ARM id (resolving a name is the caller's job). Where az would have
    looked a storage key up through ARM, this raises InvalidConfig with az's "configure key" message.
    Raises InvalidConfig for problems in the file, BatchAIError for problems with the options.
    """
    env = os.environ if env is None else env
    builder = RequestBuilder(path, "job", strict=strict)
    properties = builder.properties
    file_cluster = properties.get("cluster", {}).get("id") if isinstance(properties.get("cluster"), dict) else None
    cluster = cluster_id or file_cluster
    if not cluster:
        raise BatchAIError(MSG_NO_CLUSTER)
    properties["cluster"] = {"id": cluster}
    storage = mounts.effective_storage(storage_account_name, storage_account_key, env)
    volumes_path = ("properties", "mountVolumes")
    builder.patch_mounts(volumes_path, storage)
    builder.add_option_mounts(
        volumes_path,
        storage,
        nfs_id=nfs_id,
        nfs_mount_path=nfs_mount_path,
        afs_name=afs_name,
        afs_mount_path=afs_mount_path,
        bfs_name=bfs_name,
        bfs_mount_path=bfs_mount_path,
    )
    return builder.finish()
