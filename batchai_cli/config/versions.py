"""Upgrade documents written for API 2017-09-01-preview or 2018-03-01 to the 2018-05-01 request.

Only fields that map are touched, each with a note that names what changed; fields 2018-05-01 has
no place for are dropped with a note (az, which always sent 2018-05-01 requests, dropped them
silently). The renames are returned so that later problems point at the key the user wrote.
"""

from __future__ import annotations

import copy

from batchai_cli.config.issues import Issue
from batchai_cli.config.schemas import CURRENT

MOUNT_KINDS = ("azureFileShares", "azureBlobFileSystems")


def upgrade(data: dict, version: str) -> tuple[dict, list[Issue], dict[tuple, tuple]]:
    """(2018-05-01 document, notes and errors, renames new path -> old path)."""
    if version == CURRENT:
        return data, [], {}
    data = copy.deepcopy(data)
    issues: list[Issue] = []
    renames: dict[tuple, tuple] = {}
    if "location" in data:
        del data["location"]
        issues.append(
            _note(("location",), f"location is dropped: API {CURRENT} has no location (the workspace's is used)")
        )
    properties = data.get("properties")
    if not isinstance(properties, dict):
        return data, issues, renames
    base = ("properties",)
    for field, reason in (
        ("location", "the workspace's location is used"),
        ("experimentName", "a job belongs to the experiment given with -e"),
    ):
        if field in properties:
            value = properties.pop(field)
            issues.append(_note((*base, field), f"{field} {_show(value)} is dropped: in API {CURRENT} {reason}"))
    if "priority" in properties:
        priority = properties.pop("priority")
        if isinstance(priority, int) and not isinstance(priority, bool):
            level = "low" if priority < 0 else "high" if priority > 0 else "normal"
            properties.setdefault("schedulingPriority", level)
            renames[(*base, "schedulingPriority")] = (*base, "priority")
            issues.append(_note((*base, "priority"), f'priority {priority} is now schedulingPriority "{level}"'))
    _output_directories(properties, base, issues)
    _environment(properties, base, issues)
    for mounts_path in ((*base, "mountVolumes"), (*base, "nodeSetup", "mountVolumes")):
        _credentials(data, mounts_path, issues, renames)
    setup = _get(data, (*base, "nodeSetup", "setupTask"))
    if isinstance(setup, dict) and "runElevated" in setup:
        value = setup.pop("runElevated")
        issues.append(
            _note(
                (*base, "nodeSetup", "setupTask", "runElevated"),
                f"runElevated {_show(value)} is dropped: in API {CURRENT} setup tasks run as root",
            )
        )
    manual = _get(data, (*base, "scaleSettings", "manual"))
    if isinstance(manual, dict) and manual.get("nodeDeallocationOption") == "unknown":
        del manual["nodeDeallocationOption"]
        issues.append(
            _note(
                (*base, "scaleSettings", "manual", "nodeDeallocationOption"),
                f'nodeDeallocationOption "unknown" is dropped: API {CURRENT} has no such value '
                "(requeue, the default, applies)",
            )
        )
    return data, issues, renames


def _output_directories(properties: dict, base: tuple, issues: list[Issue]) -> None:
    outputs = properties.get("outputDirectories")
    for index, entry in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(entry, dict):
            continue
        for field in ("type", "createNew"):
            if field in entry:
                value = entry.pop(field)
                issues.append(
                    _note(
                        (*base, "outputDirectories", index, field),
                        f"{field} {_show(value)} is dropped: API {CURRENT} has no such field",
                    )
                )


def _environment(properties: dict, base: tuple, issues: list[Issue]) -> None:
    # 2017-09-01-preview allowed a variable without a value; 2018-05-01 requires one.
    for holder, path in (
        (properties, base),
        (_get(properties, ("nodeSetup", "setupTask")), (*base, "nodeSetup", "setupTask")),
    ):
        variables = holder.get("environmentVariables") if isinstance(holder, dict) else None
        for index, entry in enumerate(variables if isinstance(variables, list) else []):
            if isinstance(entry, dict) and "name" in entry and "value" not in entry:
                entry["value"] = ""
                issues.append(
                    _note(
                        (*path, "environmentVariables", index),
                        f'{_show(entry["name"])} has no value: API {CURRENT} requires one, so it is set to ""',
                    )
                )


def _credentials(data: dict, mounts_path: tuple, issues: list[Issue], renames: dict) -> None:
    volumes = _get(data, mounts_path)
    if not isinstance(volumes, dict):
        return
    for kind in MOUNT_KINDS:
        entries = volumes.get(kind)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict) or "credentialsInfo" not in entry:
                continue
            path = (*mounts_path, kind, index)
            info = entry.pop("credentialsInfo")
            if isinstance(info, dict) and "accountKeySecretUrl" in info:
                issues.append(
                    Issue(
                        (*path, "credentialsInfo", "accountKeySecretUrl"),
                        f"accountKeySecretUrl has no API {CURRENT} equivalent without the Key Vault's "
                        "resource id: write credentials.accountKeySecretReference = "
                        '{"sourceVault": {"id": ...}, "secretUrl": ...}',
                    )
                )
                continue
            entry.setdefault("credentials", info)
            renames[(*path, "credentials")] = (*path, "credentialsInfo")
            issues.append(_note((*path, "credentialsInfo"), "credentialsInfo is now credentials"))


def _note(path: tuple, message: str) -> Issue:
    return Issue(path, message, "note", "key")


def _get(data, path: tuple):
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _show(value) -> str:
    from batchai_cli.config.issues import describe

    return describe(value)
