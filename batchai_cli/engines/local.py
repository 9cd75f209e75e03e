"""The local engine: a cluster's nodes are slots on this machine.

Each job gets a detached runner process (`python -m batchai_cli.engines.runner <job-id>`) that
waits in batchai's own queue (engines/local_queue.py: schedulingPriority, then age; all of a job's
nodes at once) for free usable nodes, then runs the job (engines/runner.py) and folds the job's
reports into state.db at once, so the nodes are free for the next job. Runners sleep between
checks and are woken (SIGUSR1) when nodes may have been freed. This engine lives on the control
plane's machine, so it may use state.db; its nodes, like every engine's, read only the job's bundle.

Setup tasks (nodeSetup.setupTask) run on each new node after allocation (engines/setup.py): a node
is `preparing` while its task runs, then `idle` or `unusable`; jobs are placed on idle nodes only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket

from batchai_cli import models, settings
from batchai_cli.engines.base import Cluster, Engine, NodeView, Submitted
from batchai_cli.engines.local_queue import node_states, release_removed_nodes, runner_handle, wake_runners
from batchai_cli.errors import BatchAIError, EngineError
from batchai_cli.nodes import node_capacity, node_ids
from batchai_cli.procs import process_alive, process_start, python_module, spawn_detached


class LocalEngine(Engine):
    name = "local"

    # -- clusters ---------------------------------------------------------------------------------

    def check_cluster(self, properties: dict) -> None:
        return None

    def created(self, cluster: Cluster, db) -> None:
        """Run the setup task on the nodes that have not had it (all of them, at creation)."""
        if not (cluster.properties.get("nodeSetup") or {}).get("setupTask"):
            return
        capacity, _ = node_capacity(cluster.body)
        done = cluster.private.get("nodes") or {}
        new = [index for index in range(capacity) if str(index) not in done]
        if not new:
            return
        log_path = os.path.join(settings.ensure_home(), "setup.log")
        pid = spawn_detached(python_module("batchai_cli.engines.setup", str(cluster.rid), *map(str, new)), log_path)
        process = {"pid": pid, "start": process_start(pid)}

        def change(current: dict) -> dict:
            nodes = current.setdefault("nodes", {})
            for index in new:
                nodes.setdefault(str(index), {"state": "preparing", "error": None, "process": process})
            return current

        db.update_private(cluster.rid, change)

    def rescaled(self, cluster: Cluster, db) -> None:
        self.created(cluster, db)  # new nodes get their setup task
        release_removed_nodes(db, cluster.rid)

    def check_fits(self, cluster: Cluster, needed: int) -> None:
        capacity, _ = node_capacity(cluster.body)
        if needed > capacity:
            rid = cluster.rid
            scale = "auto-scales to at most" if (cluster.body.get("scaleSettings") or {}).get("autoScale") else "has"
            raise BatchAIError(
                f'The job needs {needed} node{"s" if needed != 1 else ""}, but cluster "{rid.name}" {scale} '
                f"{capacity}.",
                hint=f"Resize it (batchai cluster resize -g {rid.resource_group} -w {rid.get('workspace')} "
                f"-n {rid.name} -t {needed}) or lower nodeCount.",
            )

    def node_view(self, cluster: Cluster, runs: list[dict]) -> NodeView:
        body = cluster.body
        capacity, floor = node_capacity(body)
        held = [node for run in runs if run["phase"] in ("running", "terminating") for node in run["nodes"]]
        if (body.get("scaleSettings") or {}).get("autoScale"):
            demand = sum(run["node_count"] for run in runs)
            current = max(floor, min(capacity, demand))
            current = max(current, max(held, default=-1) + 1)
        else:
            current = capacity
        running = sum(1 for node in held if node < current)
        leaving = sum(1 for node in held if node >= current)
        states = node_states(cluster.private)
        # Over the nodes that have a state, not over the count: a cluster resized to millions of
        # nodes that no job fills costs nothing to show.
        preparing = sum(1 for index, node in states.items() if index < current and node.get("state") == "preparing")
        unusable = sum(1 for index, node in states.items() if index < current and node.get("state") == "unusable")
        errors = [node["error"] for index, node in sorted(states.items()) if node.get("error") and index < current]
        return NodeView(
            current=current + leaving,
            counts={
                "idle": max(0, current - running - preparing - unusable),
                "leaving": leaving,
                "preparing": preparing,
                "running": running,
                "unusable": unusable,
            },
            errors=errors or None,
            resizing=bool(leaving),
        )

    def nodes(self, cluster: Cluster, count: int | None = None) -> list[dict]:
        if count is None:
            count = node_capacity(cluster.body)[0]
        return [{"ipAddress": "127.0.0.1", "nodeId": node, "port": 22} for node in cluster_node_ids(cluster, count)]

    def job_nodes(self, cluster: Cluster, run: dict, launch: dict | None) -> list[dict]:
        indexes = run["nodes"]
        names = node_ids(cluster.rid.key, cluster.body.get("creationTime") or "", indexes)
        return [{"ipAddress": "127.0.0.1", "nodeId": name, "port": 22} for name in names]

    def deleting(self, cluster: Cluster, db) -> None:
        _stop_setup(cluster.private)
        from batchai_cli import log
        from batchai_cli.agent.volumes import release_cluster

        # Cluster-level volumes stay mounted for the nodes' life, which ends here.
        for problem in release_cluster(cluster_node_ids(cluster, 1), lambda text: log.info("%s", text)):
            log.warning("%s", problem)

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(self, job: Submitted) -> dict:
        try:
            pid = spawn_detached(
                python_module("batchai_cli.engines.runner", str(job.rid)), os.path.join(job.bundle_path, "runner.log")
            )
        except OSError as exc:
            raise EngineError(f"Could not start the job's runner: {exc}") from None
        return runner_handle(pid)

    def terminate(self, handle: dict) -> bool:
        if handle.get("pid") and handle.get("host") == socket.gethostname():
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle["pid"], signal.SIGTERM)
        return False

    def lost(self, runs: list[dict]) -> dict[str, list[dict]]:
        lost = {}
        for run in runs:
            handle = run.get("runner") or {}
            if handle.get("host") != socket.gethostname():
                continue
            if handle.get("pid") and not process_alive(handle["pid"], handle.get("start")):
                lost[run["job_key"]] = [
                    models.batchai_error(
                        "JobRunnerDied",
                        f"The process that ran this job (pid {handle['pid']}) ended without recording the job's "
                        "end: it was killed or crashed. Its processes were stopped; see runner.log in the job's "
                        "shared folder.",
                    )
                ]
        return lost

    def after_lost(self, run: dict, body: dict) -> None:
        from batchai_cli.agent.layout import kill_job_processes

        kill_job_processes(body)

    nodes_are_here = True

    def node_command(self, cluster: Cluster, handle: dict | None, node: str, argv: list[str]) -> list[str]:
        return list(argv)

    def wake(self, db, cluster_key: str) -> None:
        wake_runners(db, cluster_key)


def cluster_node_ids(cluster: Cluster, count: int) -> list[str]:
    return node_ids(cluster.rid.key, cluster.body.get("creationTime") or "", range(count))


def _stop_setup(private: dict) -> None:
    """Stop setup tasks still running on the cluster's nodes (their process group, tasks included)."""
    stopped = set()
    for node in (private.get("nodes") or {}).values():
        process = node.get("process") or {}
        pid = process.get("pid")
        if node.get("state") == "preparing" and pid and pid not in stopped and process_alive(pid, process.get("start")):
            stopped.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
