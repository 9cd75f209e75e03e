"""az's table columns (`-o table`), one transformer per resource kind. The only place columns live."""

from __future__ import annotations

from typing import Any

from batchai_cli.ids import resource_group_of


def _items(data: Any) -> list[dict]:
    return data if isinstance(data, list) else [data]


def _segment(ident: str | None, collection: str) -> str | None:
    """The name after `/<collection>/` in an ARM id (e.g. the workspace of a cluster)."""
    parts = (ident or "").split("/")
    lowered = [part.lower() for part in parts]
    try:
        return parts[lowered.index(collection.lower()) + 1]
    except (ValueError, IndexError):
        return None


def workspaces(data: Any) -> list[dict]:
    return [
        {
            "Name": item.get("name"),
            "Resource Group": item.get("resourceGroup") or resource_group_of(item.get("id")),
            "Location": item.get("location"),
            "State": item.get("provisioningState"),
        }
        for item in _items(data)
    ]


def experiments(data: Any) -> list[dict]:
    return [
        {
            "Name": item.get("name"),
            "Resource Group": item.get("resourceGroup") or resource_group_of(item.get("id")),
            "Workspace": _segment(item.get("id"), "workspaces"),
            "State": item.get("provisioningState"),
        }
        for item in _items(data)
    ]


def defaults(data: Any) -> list[dict]:
    return [{"Name": item["name"], "Value": item["value"], "Source": item["source"]} for item in _items(data)]


def clusters(data: Any) -> list[dict]:
    rows = []
    for item in _items(data):
        counts = item.get("nodeStateCounts") or {}
        rows.append(
            {
                "Name": item.get("name"),
                "Resource Group": item.get("resourceGroup") or resource_group_of(item.get("id")),
                "Workspace": _segment(item.get("id"), "workspaces"),
                "VM Size": item.get("vmSize"),
                "State": "deleting" if item.get("provisioningState") == "deleting" else item.get("allocationState"),
                "Idle": str(counts.get("idleNodeCount", 0)),
                "Running": str(counts.get("runningNodeCount", 0)),
                "Preparing": str(counts.get("preparingNodeCount", 0)),
                "Leaving": str(counts.get("leavingNodeCount", 0)),
                "Unusable": str(counts.get("unusableNodeCount", 0)),
            }
        )
    return rows


def jobs(data: Any) -> list[dict]:
    rows = []
    for item in _items(data):
        cluster = item.get("cluster") or {}
        info = item.get("executionInfo") or {}
        rows.append(
            {
                "Name": item.get("name"),
                "Cluster": _segment(cluster.get("id"), "clusters"),
                "Cluster RG": cluster.get("resourceGroup") or resource_group_of(cluster.get("id")),
                "Cluster Workspace": _segment(cluster.get("id"), "workspaces"),
                "Tool": item.get("toolType"),
                "Nodes": item.get("nodeCount"),
                "State": "deleting" if item.get("provisioningState") == "deleting" else item.get("executionState"),
                "Exit code": "" if info.get("exitCode") is None else str(info["exitCode"]),
            }
        )
    return rows


def remote_logins(data: Any) -> list[dict]:
    return [
        {"ID": item.get("nodeId"), "IP": item.get("ipAddress"), "SSH Port": int(item.get("port") or 0)}
        for item in _items(data)
    ]


def job_files(data: Any) -> list[dict]:
    # Size None (shown empty) for directories keeps the column numeric, so sizes align right as in az.
    return [
        {
            "Name": item.get("name"),
            "Type": item.get("fileType"),
            "Size": None if item.get("fileType") == "directory" else item.get("contentLength"),
            "Modified": item.get("lastModified") or " ",
        }
        for item in _items(data)
    ]


def cluster_files(data: Any) -> list[dict]:
    return [
        {
            "Name": item.get("name"),
            "Is directory": "yes" if item.get("is_directory") else "no",
            "Size": None if item.get("size") is None else item.get("size") or 0,
        }
        for item in _items(data)
    ]


def file_servers(data: Any) -> list[dict]:
    rows = []
    for item in _items(data):
        row = {
            "Name": item.get("name"),
            "Resource Group": item.get("resourceGroup") or resource_group_of(item.get("id")),
            "Size": item.get("vmSize"),
        }
        disks = item.get("dataDisks")
        if disks:
            row["Disks"] = f"{disks.get('diskCount')} x {disks.get('diskSizeInGb')} Gb"
        mount = item.get("mountSettings")
        if mount:
            row["Public IP"] = mount.get("fileServerPublicIp")
            row["Internal IP"] = mount.get("fileServerInternalIp")
            row["Mount Point"] = mount.get("mountPoint")
        rows.append(row)
    return rows
