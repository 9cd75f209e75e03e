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
