"""The Engine contract: what services/ asks of the place where jobs run, and nothing more.

services/ picks the engine from the cluster (`engines.for_cluster(body)`) and never asks which one
it got. A job reaches an engine as its bundle (bundle.py), already written: the engine only
schedules the job's runner and agents, and they report through the bundle. What the engine keeps
about a submitted job (a pid, a Slurm job id) is its handle, stored in state.db with the job and
given back to the engine for terminate and for finding lost jobs.

Clusters reach the engine as `Cluster` (id, body and private properties, as state.db holds them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from batchai_cli.ids import ResourceId


@dataclass
class Cluster:
    rid: ResourceId
    body: dict
    private: dict = field(default_factory=dict)

    @property
    def properties(self) -> dict:
        return self.private.get("properties") or {}

    @property
    def engine_settings(self) -> dict:
        return self.body.get("engine") or {}


@dataclass
class NodeView:
    """How many nodes a cluster has now and in which states (az's nodeStateCounts), with the
    errors to show and whether the cluster is resizing."""

    current: int
    counts: dict[str, int]
    errors: list[dict] | None = None
    resizing: bool = False


@dataclass
class Submitted:
    """A job as the engine gets it: its id, its cluster, its bundle folder and its request."""

    rid: ResourceId
    name: str
    cluster: Cluster
    bundle_path: str
    properties: dict


class Engine(ABC):
    name: str

    # -- clusters ---------------------------------------------------------------------------------

    @abstractmethod
    def check_cluster(self, properties: dict) -> None:
        """Refuse a cluster this engine cannot run (BatchAIError saying what to change)."""

    def created(self, cluster: Cluster, db) -> None:  # noqa: B027 - a hook most engines ignore
        """The cluster was created or rescaled: start whatever its new nodes need (setup tasks)."""

    def rescaled(self, cluster: Cluster, db) -> None:
        """The cluster's scale settings changed."""
        self.created(cluster, db)

    @abstractmethod
    def check_fits(self, cluster: Cluster, needed: int) -> None:
        """Refuse, with a clear error, a job of `needed` nodes that could never run on the cluster."""

    @abstractmethod
    def node_view(self, cluster: Cluster, runs: list[dict]) -> NodeView:
        """The cluster's node counts, given its active runs."""

    @abstractmethod
    def nodes(self, cluster: Cluster, count: int | None = None) -> list[dict]:
        """The cluster's nodes as az's remote login list: {"nodeId", "ipAddress", "port"}."""

    @abstractmethod
    def job_nodes(self, cluster: Cluster, run: dict, launch: dict | None) -> list[dict]:
        """A running job's nodes, as nodes() shows them."""

    def deleting(self, cluster: Cluster, db) -> None:  # noqa: B027
        """The cluster is being deleted (its jobs are stopped already): release its nodes."""

    # -- jobs ---------------------------------------------------------------------------------------

    @abstractmethod
    def submit(self, job: Submitted) -> dict:
        """Start the job's runner (or queue it); returns the handle to keep. EngineError on failure."""

    @abstractmethod
    def terminate(self, handle: dict) -> bool:
        """Stop the job its handle names (its bundle already holds the stop request). True when
        the job had not started and now never will: the caller records its end."""

    @abstractmethod
    def lost(self, runs: list[dict]) -> dict[str, list[dict]]:
        """Of these active runs, those whose runner is gone without reporting an end: job key ->
        the errors to record. Asks the engine once for all of them."""

    def after_lost(self, run: dict, body: dict) -> None:  # noqa: B027
        """A lost job's end was recorded: stop what may be left of its processes."""

    # True when the nodes are this machine: a port a node listens on is reached from here directly.
    nodes_are_here: bool = False

    @abstractmethod
    def node_command(self, cluster: Cluster, handle: dict | None, node: str, argv: list[str]) -> list[str]:
        """The command line that runs argv on `node` from here: inside a running job's allocation
        given the job's handle, else on the cluster's idle node. stdin and stdout are argv's."""

    def wake(self, db, cluster_key: str) -> None:  # noqa: B027
        """Nodes may have been freed on the cluster: let queued jobs look again."""
