"""The slurm engine: a job is one Slurm batch job, and its agents one `srun` step in it.

    sbatch --nodes=N --ntasks-per-node=1 --exclusive ...  job.sbatch       (on the first node:)
      job.sbatch:  srun --nodes=N --ntasks=N --ntasks-per-node=1 python -m batchai_cli.agent run-slurm <job-id> &
                   exec python -m batchai_cli.engines.runner --slurm <job-id> <bundle> <srun pid>

The script starts the agents' step first, so Slurm sets it up while the runner's interpreter
starts; the runner adopts srun (its child once exec has run) and writes the launch the agents
wait for (batch_script).

Slurm queues the job and picks its nodes, so the runner does not wait in batchai's queue; it
enforces maxWallClockTime, terminate and the job's end exactly as on a local cluster, and each
agent is task $SLURM_PROCID on the node Slurm calls $SLURMD_NODENAME. What maps to what:

    batchai                      Slurm
    cluster engine partition     --partition (none: Slurm's default partition)
    cluster engine account       --account
    nodeCount                    --nodes (whole nodes: --exclusive, one agent per node)
    maxWallClockTime             --time, in whole minutes rounded up, plus one minute in which the
                                 runner stops the job itself at the exact limit and ships its logs
    schedulingPriority           --nice: high 0, normal 1000, low 2000 (a lower nice runs first;
                                 under priority/basic each step outweighs the age of 1000 jobs)
    the job create environment   --export=ALL (BATCHAI_HOME, PATH, storage credentials...)
    runner.log                   --output/--error, in the job's shared folder

Every Slurm command runs with a timeout, and a failure becomes one EngineError saying what to check.
"""

from __future__ import annotations

import math
import os
import re

from batchai_cli import bundle as bundles
from batchai_cli import log
from batchai_cli.engines.base import Engine, NodeView
from batchai_cli.engines.slurm_step import agent_step_argv, in_allocation, node_addresses, run
from batchai_cli.errors import EngineError

NICE = {"high": 0, "normal": 1000, "low": 2000}
RUNNER_GRACE_MINUTES = 1
# Slurm job states in which the batch script may still run (or is about to).
ACTIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
# -- submitting and watching a job --------------------------------------------------------------


def submit(job_id: str, name: str, properties: dict, engine: dict, bundle_path: str) -> str:
    """Submit a job's runner with sbatch; returns the Slurm job id. The bundle must be on a file
    system the nodes share (it holds the request, the batch script, runner.log and the reports)."""
    from batchai_cli import private

    nodes = int(properties["nodeCount"])
    script = os.path.join(bundle_path, "job.sbatch")
    with os.fdopen(private.open_file(script, os.O_WRONLY | os.O_TRUNC), "w") as handle:
        handle.write(batch_script(job_id, nodes, bundle_path))
    log_path = os.path.join(bundle_path, "runner.log")
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name=batchai-{name}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        "--exclusive",
        "--no-requeue",
        "--export=ALL",
        f"--output={log_path}",
        f"--error={log_path}",
        "--open-mode=append",
        f"--chdir={bundle_path}",
        f"--nice={NICE.get(properties.get('schedulingPriority') or 'normal', NICE['normal'])}",
    ]
    if engine.get("partition"):
        argv.append(f"--partition={engine['partition']}")
    if engine.get("account"):
        argv.append(f"--account={engine['account']}")
    minutes = time_limit_minutes(properties)
    if minutes:
        partition = engine.get("partition") or default_partition()
        longest = partition_time_limit(partition)
        if longest is not None and minutes > longest:
            log.warning(
                "maxWallClockTime is longer than Slurm partition %s allows (%d minutes): Slurm will stop "
                "the job after %d minutes.",
                partition,
                longest,
                longest,
            )
            minutes = longest
        argv.append(f"--time={minutes}")
    out = run([*argv, script], what="submit the job to Slurm")
    return out.strip().split(";")[0]


def batch_script(job_id: str, nodes: int, bundle_path: str) -> str:
    """The job's batch script. Its first command starts the agents' srun step, so Slurm sets the
    step up while the runner's interpreter starts; then it becomes the runner (exec keeps its pid,
    so srun is the runner's child), which writes the launch the agents wait for. Signals are
    ignored until the runner has its handlers: a terminate in that window is not lost, the runner
    reads the bundle's stop request before it lets the agents go on. srun runs with the signals
    it would have had from the runner, and the runner's umask (077), keeping the user's own for
    the job's processes (private.py)."""
    from batchai_cli import private
    from batchai_cli.procs import python_module

    step = " ".join(_quote(arg) for arg in agent_step_argv(job_id, nodes, bundle_path))
    runner = " ".join(
        _quote(arg) for arg in python_module("batchai_cli.engines.runner", "--slurm", job_id, bundle_path)
    )
    return (
        "#!/bin/sh\n"
        "trap '' TERM INT USR1\n"
        f"rm -f {' '.join(prefix + '*' for prefix in bundles.RUN_FILE_PREFIXES)}\n"
        "(\n"
        f'  export {private.JOB_UMASK_VARIABLE}="${{{private.JOB_UMASK_VARIABLE}:-$(umask)}}"\n'
        f"  umask {private.PRIVATE_UMASK:03o}\n"
        "  trap - TERM USR1\n"
        f"  exec {step}\n"
        ") </dev/null &\n"
        f'exec {runner} "$!"\n'
    )


def partition_time_limit(partition: str) -> int | None:
    """A partition's MaxTime in minutes; None when it has none. sinfo prints it as [[days-]hours:]minutes:seconds
    (5:00, 1:05:00, 2-03:00:00) or "infinite"."""
    text = run(["sinfo", "-h", "-p", partition, "-o", "%l"], what=f"read Slurm partition {partition}'s time limit")
    found = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", (text.split() or [""])[0])
    if not found:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return (days * 24 + hours) * 60 + minutes + math.ceil(seconds / 60)


def time_limit_minutes(properties: dict) -> int | None:
    from batchai_cli.engines.runner import wall_clock_seconds

    seconds = wall_clock_seconds(properties)
    return math.ceil(seconds / 60) + RUNNER_GRACE_MINUTES if seconds else None


def job_state(slurm_job: str) -> tuple[str, str | None] | None:
    """(state, exit code) of a Slurm job, e.g. ("RUNNING", None), ("CANCELLED", "0:15"); None when
    Slurm no longer knows it (it forgets ended jobs after MinJobAge). EngineError if Slurm cannot
    be asked."""
    out = subprocess_or_none(["squeue", "-h", "-j", slurm_job, "-o", "%T"])
    if out and out.split()[0] in ACTIVE_STATES:
        return out.split()[0], None
    out = subprocess_or_none(["scontrol", "show", "job", slurm_job, "-o"])
    if not out:
        return None
    fields = dict(re.findall(r"(\w+)=(\S*)", out))
    return fields.get("JobState", "UNKNOWN"), fields.get("ExitCode")


def subprocess_or_none(argv: list[str]) -> str | None:
    """stdout of a query, or None when Slurm says the job id is unknown."""
    try:
        return run(argv, what="ask Slurm about the job")
    except EngineError as exc:
        if "invalid job id" in exc.message.lower():
            return None
        raise


def ended_errors(slurm_job: str) -> list[dict] | None:
    """For an active batchai job whose Slurm job is gone or has ended without the runner recording
    the end: the errors to record. None while the Slurm job may still run."""
    found = job_state(slurm_job)
    if found is not None and found[0] in ACTIVE_STATES:
        return None
    if found is None:
        message = (
            f"Slurm job {slurm_job} is gone (Slurm no longer knows it) and the job's end was never "
            "recorded: its runner was stopped before it could. See runner.log in the job's shared folder."
        )
        return [_error("SlurmJobEnded", message, slurmJobId=slurm_job)]
    state, exit_code = found
    message = (
        f"Slurm job {slurm_job} ended ({state}{', exit code ' + exit_code if exit_code else ''}) without "
        f"the job's end being recorded: {_why(state)} See runner.log in the job's shared folder."
    )
    return [_error("SlurmJobEnded", message, slurmJobId=slurm_job, slurmJobState=state)]


def _why(state: str) -> str:
    return {
        "CANCELLED": "it was cancelled in Slurm (scancel, or an administrator).",
        "TIMEOUT": "it reached its Slurm time limit.",
        "NODE_FAIL": "one of its nodes failed.",
        "PREEMPTED": "Slurm preempted it.",
        "OUT_OF_MEMORY": "it ran out of memory.",
        "BOOT_FAIL": "its nodes failed to boot.",
        "DEADLINE": "it reached its deadline.",
    }.get(state, "its runner ended early (killed or crashed).")


def cancel(slurm_job: str) -> str | None:
    """Stop a Slurm job: a pending one is removed from the queue (returns "PENDING"); a running one's
    runner gets SIGTERM and stops the job itself. Returns the state it was in (None: gone)."""
    found = job_state(slurm_job)
    if found is None or found[0] not in ACTIVE_STATES:
        return found[0] if found else None
    if found[0] == "PENDING":
        run(["scancel", slurm_job], what=f"cancel Slurm job {slurm_job}")
    else:
        run(["scancel", "--batch", "--signal=TERM", slurm_job], what=f"signal Slurm job {slurm_job}")
    return found[0]


def _error(code: str, message: str, **details: str) -> dict:
    return {"code": code, "message": message, "details": [{"name": k, "value": v} for k, v in details.items()] or None}


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


NODE_EXEC_WAIT = 30  # seconds `cluster node exec` waits for a busy node


# -- partitions ---------------------------------------------------------------------------------


def partition_nodes(partition: str | None) -> list[tuple[str, str]]:
    """(node name, long state) of each node in a partition (None: Slurm's default partition).
    EngineError when Slurm cannot be asked or has no such partition."""
    name = partition or default_partition()
    out = run(["sinfo", "-N", "-h", "-p", name, "-o", "%N %T"], what=f"list the nodes of Slurm partition {name}")
    nodes = [tuple(line.split()[:2]) for line in out.splitlines() if len(line.split()) >= 2]
    if not nodes:
        known = run(["sinfo", "-h", "-o", "%R"], what="list Slurm's partitions").split()
        raise EngineError(
            f'Slurm has no partition "{name}" (it has: {", ".join(sorted(set(known))) or "none"}).',
            hint="Set engine.partition in cluster.json to one of them.",
        )
    return nodes


def partition_size(partition: str | None) -> int:
    """How many nodes a partition has (sinfo -h -p <partition> -o %D)."""
    name = partition or default_partition()
    out = run(["sinfo", "-h", "-p", name, "-o", "%D"], what=f"count the nodes of Slurm partition {name}")
    counts = [int(word) for word in out.split() if word.isdigit()]
    if not counts:
        partition_nodes(name)  # raises with the partitions Slurm has
    return sum(counts)


def default_partition() -> str:
    for word in run(["sinfo", "-h", "-o", "%P"], what="find Slurm's default partition").split():
        if word.endswith("*"):
            return word[:-1]
    raise EngineError("Slurm has no default partition.", hint="Set engine.partition in cluster.json.")


def node_trouble(node: str) -> str | None:
    """What Slurm says is wrong with a node ("Slurm has node n1 down: Not responding"), or None when
    the node is well (or Slurm cannot be asked): why an agent's step ended under it."""
    try:
        out = run(["sinfo", "-N", "-h", "-n", node, "-o", "%T|%E"], what=f"ask Slurm about node {node}")
    except EngineError:
        return None
    state, _, reason = (out.splitlines() or [""])[0].partition("|")
    if not state or node_state_kind(state) not in ("unusable", "leaving"):
        return None
    reason = reason.strip()
    return f"Slurm has node {node} {state}" + (f": {reason}" if reason and reason != "none" else "")


def node_state_kind(state: str) -> str:
    """A Slurm node state (sinfo %T) as a Batch AI node state: idle, running, preparing, leaving or
    unusable."""
    if state.endswith("*"):  # not responding
        return "unusable"
    if state.endswith("#") or state.startswith(("powering_up", "boot", "reboot")):
        return "preparing"
    base = state.rstrip("~#!%$@^-")
    if base in ("idle", "planned"):
        return "idle"
    if base in ("allocated", "mixed", "completing"):
        return "running"
    if base == "draining":
        return "leaving"
    return "unusable"


# -- the Engine ----------------------------------------------------------------------------------

NODE_KINDS = ("idle", "running", "preparing", "leaving", "unusable")


def active_states(slurm_jobs: list[str]) -> dict[str, str]:
    """Slurm job id -> state, for those of `slurm_jobs` Slurm still has queued or running: one
    squeue for all of them."""
    if not slurm_jobs:
        return {}
    out = run(
        ["squeue", "-h", "--states=all", "-j", ",".join(slurm_jobs), "-o", "%i %T"], what="ask Slurm about the jobs"
    )
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ACTIVE_STATES:
            states[parts[0]] = parts[1]
    return states


class SlurmEngine(Engine):
    """A cluster on a Slurm partition: Slurm queues the job, picks its nodes and runs its runner
    as the batch script (see the top of this module)."""

    name = "slurm"

    def check_cluster(self, properties: dict) -> None:
        import shutil

        from batchai_cli.errors import BatchAIError

        if not shutil.which("sbatch"):
            raise BatchAIError(
                "The slurm engine needs Slurm's sbatch and srun on this machine, and they are not on PATH.",
                hint="Install Slurm (apt-get install slurm-wlm) or use --engine local.",
            )
        if (properties.get("nodeSetup") or {}).get("setupTask"):
            raise BatchAIError(
                "A slurm cluster does not run nodeSetup.setupTask: batchai does not own its nodes.",
                hint="Prepare the partition's nodes yourself (e.g. with srun), and remove setupTask from cluster.json.",
            )
        partition_nodes((properties.get("engine") or {}).get("partition"))  # it exists, and Slurm answers

    def rescaled(self, cluster, db) -> None:
        log.warning(
            'Cluster "%s" runs on Slurm: its scale settings are kept, but the partition\'s nodes decide '
            "where jobs run.",
            cluster.rid.name,
        )

    def check_fits(self, cluster, needed: int) -> None:
        """A job may use at most every node of the partition (Slurm would keep a larger one pending for ever)."""
        from batchai_cli.errors import BatchAIError

        partition = cluster.engine_settings.get("partition")
        size = partition_size(partition)
        if needed > size:
            raise BatchAIError(
                f'The job needs {needed} node{"s" if needed != 1 else ""}, but cluster "{cluster.rid.name}" runs on '
                f'Slurm partition "{partition or default_partition()}", which has {size}.',
                hint="Lower nodeCount, or use a cluster on a larger partition (sinfo -s lists them).",
            )

    def node_view(self, cluster, runs: list[dict]):
        """The partition's nodes and their states from sinfo (idle; allocated, mixed or completing:
        running; powering up: preparing; draining: leaving; down, drained, not responding...:
        unusable). Nodes busy with any job of the partition count as running."""
        try:
            nodes = partition_nodes(cluster.engine_settings.get("partition"))
            errors = None
        except EngineError as exc:
            log.warning("%s", exc)
            nodes = []
            errors = [{"code": "SlurmNotAnswering", "message": str(exc), "details": None}]
        counts = dict.fromkeys(NODE_KINDS, 0)
        for _name, node_state in nodes:
            counts[node_state_kind(node_state)] += 1
        return NodeView(
            current=len(nodes), counts=counts, errors=errors, resizing=bool(counts["leaving"] or counts["preparing"])
        )

    def nodes(self, cluster, count: int | None = None) -> list[dict]:
        names = [name for name, _state in partition_nodes(cluster.engine_settings.get("partition"))]
        return self._login_list(names)

    def job_nodes(self, cluster, run: dict, launch: dict | None) -> list[dict]:
        # The runner records the nodes Slurm gave the job once it starts them.
        names = (launch or {}).get("node_names")
        return self._login_list(names) if names else []

    def _login_list(self, names: list[str]) -> list[dict]:
        addresses = node_addresses(names) if names else {}
        return [{"ipAddress": addresses.get(name, name), "nodeId": name, "port": 22} for name in names]

    def deleting(self, cluster, db) -> None:
        return None

    def submit(self, job) -> dict:
        import socket

        slurm_job = submit(str(job.rid), job.name, job.properties, job.cluster.engine_settings, job.bundle_path)
        return {"slurm_job_id": slurm_job, "host": socket.gethostname()}

    def terminate(self, handle: dict) -> bool:
        """A pending Slurm job leaves Slurm's queue (True: record its end now); a running one's
        runner is signalled and ends the job itself (it also reads the stop request)."""
        slurm_job = handle.get("slurm_job_id")
        if not slurm_job:
            return False
        try:
            was = cancel(slurm_job)
        except EngineError as exc:
            log.warning("Could not reach Slurm to stop job %s: %s", slurm_job, exc)
            return False
        return was == "PENDING"

    def lost(self, runs: list[dict]) -> dict[str, list[dict]]:
        """Runs whose Slurm job ended or vanished without the runner reporting the end. One squeue
        for all; scontrol only for those squeue no longer lists (to tell why they ended)."""
        by_job = {r["runner"]["slurm_job_id"]: r for r in runs if (r.get("runner") or {}).get("slurm_job_id")}
        try:
            active = active_states(list(by_job))
        except EngineError as exc:
            log.warning("Cannot check the jobs in Slurm: %s", exc)
            return {}
        lost = {}
        for slurm_job, job_run in by_job.items():
            if slurm_job in active:
                continue
            try:
                errors = ended_errors(slurm_job)
            except EngineError as exc:
                log.warning("Cannot check Slurm job %s: %s", slurm_job, exc)
                continue
            if not errors:
                continue
            if job_run["phase"] == "terminating":
                # A terminate that stopped the job before its runner could record it.
                errors = [
                    {"code": "JobTerminated", "message": "The job was terminated by the user.", "details": None},
                    *errors,
                ]
            lost[job_run["job_key"]] = errors
        return lost

    def after_lost(self, run: dict, body: dict) -> None:
        return None  # Slurm stops a job's processes on its nodes itself

    def node_command(self, cluster, handle: dict | None, node: str, argv: list[str]) -> list[str]:
        if handle and handle.get("slurm_job_id"):
            return in_allocation(handle["slurm_job_id"], node, argv)
        engine = cluster.engine_settings
        where = [f"--{key}={engine[key]}" for key in ("partition", "account") if engine.get(key)]
        # A node that another Slurm job holds: fail after a while, rather than wait for it unseen.
        wait = f"--immediate={NODE_EXEC_WAIT}"
        return ["srun", "--quiet", *where, wait, "--job-name=batchai-exec", "-w", node, "-N1", "-n1", *argv]

    def wake(self, db, cluster_key: str) -> None:
        return None
