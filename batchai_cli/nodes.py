"""Pure facts about a cluster's nodes that the services and the engines both need: how many a
cluster has room for, and their Batch AI style ids. A leaf module (imports nothing of batchai's)."""

from __future__ import annotations

import hashlib


def node_capacity(body: dict) -> tuple[int, int]:
    """(nodes jobs may be placed on, nodes currently allocated with no demand) for a cluster body.

    Manual scale: the target count, both. Auto-scale: up to the maximum; allocated follows demand.
    """
    scale = body.get("scaleSettings") or {}
    if scale.get("autoScale"):
        auto = scale["autoScale"]
        return int(auto["maximumNodeCount"]), int(auto["minimumNodeCount"])
    target = int((scale.get("manual") or {}).get("targetNodeCount") or 0)
    return target, target


def node_id(cluster_key: str, creation_time: str, index: int) -> str:
    """A node's stable id in Batch AI's style: tvm-<cluster hash>_<n>-<creation time>."""
    digest = int(hashlib.sha256(cluster_key.encode()).hexdigest()[:8], 16) % 10**10
    stamp = (creation_time or "")[:19].replace("-", "").replace(":", "").lower()
    return f"tvm-{digest}_{index + 1}-{stamp}z"


def node_ids(cluster_key: str, creation_time: str, indexes) -> list[str]:
    return [node_id(cluster_key, creation_time, index) for index in indexes]
