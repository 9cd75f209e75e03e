"""Inside a Slurm job's allocation: the runner's side of the slurm engine, and Slurm's commands.

The job's batch script (the runner, engines/runner.py) starts the agents as one `srun` step
(AgentStep), finds the nodes' names and addresses, and says why Slurm stopped a job. Every Slurm
command runs through `run`, with a timeout; a failure becomes one EngineError saying what to check.
engines/slurm.py (the Engine, on the control plane) uses the same `run`.

This module stays light (no Engine contract, no dataclasses): it is on the path from the batch
script's start to the agents' srun.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from batchai_cli import bundle as bundles
from batchai_cli.errors import EngineError

COMMAND_TIMEOUT = 30.0
CONTROLLER_HINT = (
    "Check that slurmctld is running and answering (sinfo should list the partitions) and that "
    "SLURM_CONF or /etc/slurm/slurm.conf names it."
)


# -- running Slurm's commands -------------------------------------------------------------------


def run(argv: list[str], *, what: str) -> str:
    """Run a Slurm client command; its stdout, or an EngineError saying what failed and what to check."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EngineError(
            f"Cannot {what}: Slurm's {argv[0]} is not on PATH.",
            hint="Install Slurm's client commands (apt-get install slurm-client, or slurm-wlm) or fix PATH.",
        ) from None
    except subprocess.TimeoutExpired:
        raise EngineError(
            f"Cannot {what}: {argv[0]} did not answer within {COMMAND_TIMEOUT:.0f} s (slurmctld is not answering).",
            hint=CONTROLLER_HINT,
        ) from None
    if done.returncode != 0:
        raise EngineError(f"Cannot {what}: {_last_line(argv[0], done.stderr or done.stdout)}", hint=_hint(done.stderr))
    return done.stdout


def _last_line(program: str, text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return f"{program} failed with no message."
    line = lines[-1]
    for prefix in (f"{program}: error: ", f"{program}: fatal: ", "slurm_load_jobs error: "):
        line = line.removeprefix(prefix)
    return f"{program}: {line}"


def _hint(stderr: str) -> str:
    text = stderr.lower()
    if (
        "unable to contact slurm controller" in text
        or "connection refused" in text
        or "slurm_conf" in text
        or "configuration file" in text
        or "zero bytes were transmitted" in text
    ):
        return CONTROLLER_HINT
    if "munge" in text or "authentication" in text:
        return "Check that munged runs on this machine with the cluster's key (munge -n | unmunge should work)."
    if "partition" in text:
        return "Check the cluster's engine partition against the partitions sinfo lists."
    if "account" in text or "association" in text:
        return "Check the cluster's engine account (sacctmgr show assoc user=$USER lists yours)."
    return "Run the same Slurm command by hand to see more; slurmctld's log may say why."


def state_message(slurm_job: str) -> str:
    """What the runner records when Slurm itself stopped the job. Slurm shows the job COMPLETING
    until its runner exits, so why it was stopped cannot be told yet."""
    return (
        f"Slurm stopped the job (Slurm job {slurm_job}) before it ended: it was cancelled in Slurm (scancel, "
        "an administrator), reached a Slurm time limit, or lost a node."
    )


# -- inside the allocation: the agents' step ----------------------------------------------------


def agent_step_argv(job_id: str, node_count: int, bundle_path: str) -> list[str]:
    """The srun of a job's agents: one task per node, each an agent (agent/node.py main_slurm)."""
    # slurmstepd starts tasks with signals unblocked, so an agent would die of a SIGTERM sent
    # before its handlers are in place (a short task 0 ends before the idle nodes' agents have
    # started). The agents start with SIGTERM ignored instead, and look for the stop mark,
    # written before any signal, once their handlers are in place.
    # The shell stays as the agent's parent: an agent that dies without its result (SIGKILL, the
    # OOM killer) is told by lost-<task>, holding its exit status, which the runner and the other
    # nodes watch (srun, with --kill-on-bad-exit=0, lets the other tasks go on and says nothing).
    # ($5 is the bundle: the shell's arguments are the agent's command line.)
    watch = (
        'trap \'\' TERM INT; "$0" "$@"; code=$?; lost="$5/lost-$SLURM_PROCID"; '
        '[ -e "$5/result-$SLURM_PROCID.json" ] || { echo "$code" > "$lost.tmp" && mv "$lost.tmp" "$lost"; }; '
        'exit "$code"'
    )
    return [
        "srun",
        f"--nodes={node_count}",
        f"--ntasks={node_count}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=0",
        f"--output={os.path.join(bundle_path, 'agent-%t.log')}",
        "sh",
        "-c",
        watch,
        sys.executable,
        "-m",
        "batchai_cli.agent",
        "run-slurm",
        job_id,
        bundle_path,
    ]


class _Started:
    """The agents' srun as the batch script started it, before it exec'd the runner (so srun is
    the runner's child): poll() and returncode, as subprocess.Popen has them."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.poll()

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                raise EngineError(
                    f"Process {self.pid} is not the agents' srun: it is not the runner's child."
                ) from None
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class AgentStep:
    """The job's agents as one srun step (one task per node), with the interface the runner uses
    for its agents: running(), task_done(task), signal(sig), how(task), where(task).

    The batch script starts the step (srun_pid) as its first command, so that Slurm sets it up
    while the runner starts; the agents wait for the launch the runner writes (agent/node.py).
    Without srun_pid (a script written by an older batchai), the step is started here."""

    # Our batch script runs exactly one srun, so its step is the job's step 0.
    STEP = 0

    def __init__(self, job_id: str, node_names: list[str], job_bundle, *, srun_pid: int | None = None):
        self.slurm_job = os.environ["SLURM_JOB_ID"]
        self.job_id, self.bundle_path = job_id, job_bundle.path
        self.bundle = job_bundle
        self.node_names = node_names
        self.stop_mark = job_bundle.file(bundles.STOP_AGENTS)
        if srun_pid is None:
            argv = agent_step_argv(job_id, len(node_names), job_bundle.path)
            self.srun = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        else:
            self.srun = _Started(srun_pid)
        self.killed = False

    def running(self) -> bool:
        return self.srun.poll() is None

    def task_done(self, task: int) -> bool:
        return self.srun.poll() is not None or self.bundle.agent_ended(task)

    def lost_status(self, task: int) -> int | None:
        """The exit status of task's agent when it died without its result (agent_step_argv)."""
        try:
            with open(self.bundle.lost_path(task)) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def signal(self, sig: int) -> None:
        """Signal every process of the step on every node (srun itself would kill them at once on
        SIGTERM). SIGKILL is sent once; the runner repeats its signals."""
        if not self.running() or (sig == signal.SIGKILL and self.killed):
            return
        self.killed = self.killed or sig == signal.SIGKILL
        with open(self.stop_mark, "a"):
            pass
        name = signal.Signals(sig).name.removeprefix("SIG")
        try:
            run(["scancel", f"--signal={name}", f"{self.slurm_job}.{self.STEP}"], what="signal the job's agents")
        except EngineError as exc:
            if "invalid job id" not in exc.message.lower():  # else the step has ended meanwhile
                print(f"warning: {exc}", file=sys.stderr, flush=True)

    def where(self, task: int) -> str:
        node = self.node_names[task] if task < len(self.node_names) else "?"
        return f"node {node} (task {task})"

    def how(self, task: int) -> str:
        from batchai_cli.engines.slurm import node_trouble  # an agent died: worth asking Slurm why

        status = self.lost_status(task)
        if status is not None and status > 128:
            how = f"killed by {_signal_name(status - 128)}"
        elif status is not None:
            how = f"exited with code {status}"
        else:
            how = f"srun exited with code {self.srun.returncode}"
        trouble = node_trouble(self.node_names[task]) if task < len(self.node_names) else None
        return f"ended ({how}; {trouble})" if trouble else f"ended ({how})"

    def recover(self, task: int) -> None:
        """Ship what task's dead agent left in its node's spool, on that node, inside the job's
        allocation (the runner still holds it)."""
        node = self.node_names[task]
        argv = in_allocation(
            self.slurm_job,
            node,
            [sys.executable, "-m", "batchai_cli.agent", "recover", self.job_id, str(task), node, self.bundle_path],
        )
        try:
            run(argv, what=f"recover the logs of task {task} on node {node}")
        except EngineError as exc:
            print(f"warning: {exc}", file=sys.stderr, flush=True)


def in_allocation(slurm_job: str, node: str, argv: list[str]) -> list[str]:
    """argv as one more step of a running Slurm job, on one of its nodes, beside the job's own steps."""
    return ["srun", "--quiet", "--overlap", f"--jobid={slurm_job}", "-w", node, "-N1", "-n1", *argv]


def hostnames(nodelist: str) -> list[str]:
    """Slurm's compact node list (n[1-2],gpu3) as names, in Slurm's order."""
    if not nodelist:
        return []
    if "[" not in nodelist:  # plain names (a one-node job's list is its node's name): nothing to expand
        return [name for name in nodelist.split(",") if name]
    return run(["scontrol", "show", "hostnames", nodelist], what="expand the job's node list").split()


def node_addresses(names: list[str] | None = None) -> dict[str, str]:
    """NodeAddr of Slurm nodes (all of them when names is None)."""
    argv = ["scontrol", "show", "node", "-o"] + ([",".join(names)] if names else [])
    addresses = {}
    for line in run(argv, what="look up the nodes' addresses").splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "NodeName" in fields:
            addresses[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return addresses


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
