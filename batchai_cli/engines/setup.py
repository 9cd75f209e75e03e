"""Node setup: a cluster's setup task, run on each node after the node is allocated.

    python -m batchai_cli.engines.setup <cluster-id> <node-index>...

Each node is `preparing` while its task runs, then `idle` (exit code 0) or `unusable` (anything
else; the cluster's `errors` say why); jobs are placed on idle nodes only. The task runs with the
cluster's volumes in place under $AZ_BATCHAI_MOUNT_ROOT, its own environmentVariables and
secrets, and its output goes to {stdOutErrPathPrefix}/{stdOutErrPathSuffix}/ as
stdout-<node>.txt, stderr-<node>.txt and execution-<node>.log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone

from batchai_cli import ids, private, state
from batchai_cli.agent import environment, layout
from batchai_cli.agent.logs import LogShipper
from batchai_cli.agent.node import _pump
from batchai_cli.agent.volumes import place, upload_changes
from batchai_cli.models import batchai_error
from batchai_cli.procs import ready_for_signals
from batchai_cli.storage import paths


def set_node_state(db, rid, index: int, node_state: str, error: dict | None = None, **extra) -> None:
    def change(private: dict) -> dict:
        nodes = private.setdefault("nodes", {})
        nodes[str(index)] = {"state": node_state, "error": error, **extra}
        return private

    db.update_private(rid, change)


def run_node(rid, body: dict, properties: dict, index: int, node_id: str) -> None:
    db = state.open_state()
    setup = properties["nodeSetup"]["setupTask"]
    volumes = paths.job_volumes({}, properties)
    try:
        store, key = paths.resolve(setup["stdOutErrPathPrefix"], volumes)
    except Exception as exc:
        set_node_state(
            db,
            rid,
            index,
            "unusable",
            batchai_error(
                "SetupTaskFailed", nodeId=node_id, message=f"Cannot use the setup task's stdOutErrPathPrefix: {exc}"
            ),
        )
        return
    directory = "/".join(part for part in (key, setup.get("stdOutErrPathSuffix")) if part)
    spool = os.path.join(layout.node_root(node_id), "setup", "spool")
    shipper = LogShipper(store, directory, spool)
    execution = shipper.open(f"execution-{node_id}.log")
    shipper.start()

    def note(message: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        execution.text(f"{stamp} {message}\n")

    mount_root = os.path.join(layout.node_root(node_id), "mounts")
    os.makedirs(mount_root, exist_ok=True)
    placed = []
    problem = None
    code = None
    try:
        for volume in volumes:
            placed.append(place(volume, mount_root, note))
        env = environment.inherited(os.environ)
        env["AZ_BATCHAI_MOUNT_ROOT"] = mount_root
        output = paths.expand(setup["stdOutErrPathPrefix"], {paths.CLUSTER_ROOT: mount_root})
        env["AZ_BATCHAI_STDOUTERR_DIR"] = os.path.join(output, setup.get("stdOutErrPathSuffix") or "")
        for variable in (setup.get("environmentVariables") or []) + (setup.get("secrets") or []):
            if variable.get("value") is not None:
                env[variable["name"]] = variable["value"]
        note(f"Setup task on node {node_id}: {setup['commandLine']}")
        child = subprocess.Popen(
            ["bash", "-c", setup["commandLine"]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            umask=private.job_umask(),
            # In this process's group (the session spawn_detached made), so stopping the group
            # (cluster delete) stops the tasks too.
            cwd=layout.node_root(node_id),
        )
        pumps = [
            threading.Thread(target=_pump, args=(child.stdout, shipper.open(f"stdout-{node_id}.txt"))),
            threading.Thread(target=_pump, args=(child.stderr, shipper.open(f"stderr-{node_id}.txt"))),
        ]
        for pump in pumps:
            pump.start()
        code = child.wait()
        for pump in pumps:
            pump.join()
        note(f"Setup task exited with code {code}.")
        if code != 0:
            problem = f"The setup task failed on node {node_id} with exit code {code}."
    except Exception as exc:
        problem = f"The setup task could not run on node {node_id}: {exc}"
        note(problem)
    for item in placed:
        for issue in upload_changes(item, [directory] if item.store and item.store.url() == store.url() else [], note):
            note(f"Upload failed: {issue}")
    for issue in shipper.close():
        problem = problem or issue
    set_node_state(
        db,
        rid,
        index,
        "unusable" if problem else "idle",
        batchai_error("SetupTaskFailed", nodeId=node_id, message=problem) if problem else None,
    )
    db.close()


def main(argv: list[str]) -> int:
    from batchai_cli.nodes import node_ids

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ready_for_signals()
    private.enter()
    rid = ids.parse(argv[0], expect="cluster")
    db = state.open_state()
    body = db.get(rid)
    properties = db.get_private(rid).get("properties", {})
    db.close()
    if body is None:
        return 0
    indexes = [int(value) for value in argv[1:]]
    names = node_ids(rid.key, body.get("creationTime") or "", range(max(indexes) + 1))
    threads = [
        threading.Thread(target=run_node, args=(rid, body, properties, index, names[index])) for index in indexes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    from batchai_cli.engines.local_queue import wake_runners

    db = state.open_state()
    wake_runners(db, rid.key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
