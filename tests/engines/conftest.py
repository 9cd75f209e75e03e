"""The engine contract's fixture: `engine_lab`, the jobs lab with cluster "c" of two nodes on one
engine, once for `local` and once for `slurm` (the session's two-node Slurm, partition debug).

Everything that differs between the engines lives here, behind EngineLab's few methods (where
$BATCHAI_HOME and the job output go, the node names, how to find a job's runner, what the engine
holds, the messages that name the engine), so each test in test_contract.py reads the same for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from batchai_cli.agent.shell import mpi_host
from tests.helpers import pids_running
from tests.jobs.conftest import Lab, custom, lab, pid_alive, until  # noqa: F401 - the lab fixture, shared

ENGINES = ("local", pytest.param("slurm", marks=pytest.mark.integration))
NODES = 2
SLURM_PARTITION = "debug"
RUNNER = "batchai_cli.engines.runner"  # in the command line of a job's runner, on either engine


@dataclass
class EngineLab(Lab):
    """The jobs lab on one engine. `out` is where jobs write stdout/stderr and outputs, `scratch` a
    folder every node sees (the tests' gates and marks)."""

    engine: str = "local"
    out: Path = field(default=Path())
    scratch: Path = field(default=Path())
    slurm: object = None

    def job(self, command: str, **more) -> dict:
        """A one-node customToolkit job with its stdout/stderr in `out`."""
        return custom(command, self.out, **more)

    def node_names(self) -> list[str]:
        """The cluster's nodes as jobs see them: local node ids (`cluster node list`), Slurm's node
        names (the partition's, from the fixture, not from batchai)."""
        if self.engine == "slurm":
            return list(self.slurm.nodes)
        listing = self.batchai("cluster", "node", "list", "-g", "rg", "-w", "ws", "-c", "c").json()
        return [node["nodeId"] for node in listing]

    def node_of(self, node_folder: str) -> str:
        """The node a node-local folder (AZ_BATCHAI_JOB_TEMP, AZ_BATCHAI_MOUNT_ROOT) belongs to."""
        return node_folder.split("/nodes/")[1].split("/")[0]

    def address(self, node: str) -> str:
        """The address a node is reached at: a local node is this host; the test Slurm's nodes are
        all this host too (NodeAddr=127.0.0.1 in tests/fixtures/slurm.py)."""
        return "127.0.0.1"

    def ran_on(self, record: dict) -> str:
        """The node a task ran on, by the engine's own word (a probe's record of its environment):
        Slurm's SLURMD_NODENAME; a local node has no witness but its folder."""
        if self.engine == "slurm":
            return record["SLURMD_NODENAME"]
        return self.node_of(record["AZ_BATCHAI_JOB_TEMP"])

    def allocation_note(self, job: dict) -> str:
        """What execution.log adds to a task's first line about where the engine runs the job:
        under Slurm, the one Slurm job all its tasks share."""
        return f" in Slurm job {self.slurm_job_id(job)}" if self.engine == "slurm" else ""

    def mpi_host_file(self, processes: int) -> str:
        """The MPI host file of a two-node job of `processes` processes (its processCount), spread
        evenly over the nodes: under Slurm each node by its name; on a local cluster each node by its
        id made a host name, which mpirun reaches through batchai's rsh shim (agent/shell.py)."""
        names = self.slurm.nodes if self.engine == "slurm" else [mpi_host(node) for node in self.node_names()]
        slots = -(-processes // NODES)
        return "".join(f"{name} slots={slots}\n" for name in sorted(names))

    def too_large_error(self, node_count: int) -> str:
        """job create's whole stderr for a job of `node_count` nodes, more than the cluster has."""
        if self.engine == "slurm":
            return (
                f'ERROR: The job needs {node_count} nodes, but cluster "c" runs on Slurm partition '
                f'"{SLURM_PARTITION}", which has {NODES}. Lower nodeCount, or use a cluster on a larger '
                "partition (sinfo -s lists them).\n"
            )
        return (
            f'ERROR: The job needs {node_count} nodes, but cluster "c" has {NODES}. Resize it (batchai cluster '
            f"resize -g rg -w ws -n c -t {node_count}) or lower nodeCount.\n"
        )

    def runner_pid(self, job: dict) -> int:
        """The pid of the job's runner (local: the detached runner; slurm: the batch script's)."""
        return until(
            lambda: next(iter(job_processes(job["id"], RUNNER)), None),
            what=f"the runner of {job['name']}",
        )

    def held(self, job: dict) -> bool:
        """Whether the engine still holds the job (as `job show` gave it): its runner runs (local),
        or Slurm has it queued or running (squeue shows batchai-<name>). Asks the engine only, not
        batchai, so it is no look at the job that could change its state."""
        if self.engine == "slurm":
            return bool(self.slurm.run("squeue", "-h", "-n", f"batchai-{job['name']}", "-o", "%i").stdout.split())
        return bool(job_processes(job["id"], RUNNER))

    def runner_died_error(self, job: dict, runner_pid: int) -> dict:
        """The error a job gets when its runner (pid `runner_pid`) is killed. Under Slurm the runner
        is the batch script, so Slurm sees the Slurm job fail and the error names that."""
        if self.engine == "slurm":
            slurm_job = self.slurm_job_id(job)
            return {
                "code": "SlurmJobEnded",
                "details": [{"name": "slurmJobId", "value": slurm_job}, {"name": "slurmJobState", "value": "FAILED"}],
                "message": f"Slurm job {slurm_job} ended (FAILED, exit code 0:9) without the job's end being "
                "recorded: its runner ended early (killed or crashed). See runner.log in the job's shared folder.",
            }
        return {
            "code": "JobRunnerDied",
            "details": None,
            "message": f"The process that ran this job (pid {runner_pid}) ended without recording the job's end: "
            "it was killed or crashed. Its processes were stopped; see runner.log in the job's shared folder.",
        }

    def slurm_job_id(self, job: dict) -> str:
        return slurm_job_id(self.slurm, job["name"])


def slurm_job_id(slurm, name: str) -> str:
    """The Slurm job of batchai job `name`: the latest Slurm job named batchai-<name> (Slurm keeps
    ended ones for MinJobAge, 5 minutes), as an administrator would find it."""
    listing = slurm.run("squeue", "-h", "-t", "all", "-n", f"batchai-{name}", "-o", "%i").stdout.split()
    return max(listing, key=int)


def job_processes(job_id: str, *also: str) -> list[int]:
    """Live processes whose command line names the job (its runner, agents and Slurm steps), and
    each of `also`."""
    return pids_running(job_id, *also)


class EngineFolders(NamedTuple):
    home: Path  # $BATCHAI_HOME
    out: Path  # stdOutErrPathPrefix and outputs' pathPrefix
    scratch: Path  # the tests' gates and marks


def engine_folders(engine: str, home: Path, tmp_path: Path, request) -> EngineFolders:
    """Where a lab on `engine` keeps things. Local: tests/conftest.py's $BATCHAI_HOME. Slurm: a home
    under the root the Slurm fixture hides from slurmd (tests/fixtures/slurm.py: the nodes cannot
    see state.db), with the shared folder apart (BATCHAI_SHARED_DIR), as on a cluster of many
    machines. `out` and `scratch` are visible from every node and outside the home. Called twice
    per test (for the home, then for the lab), so it gives the same folders each time."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    if engine == "slurm":
        slurm = request.getfixturevalue("slurm")
        moved = slurm.hidden / tmp_path.name
        if not moved.exists():
            import shutil

            shutil.copytree(home, moved)
            moved.chmod(0o700)
            shared = tmp_path / "shared"
            shared.mkdir(mode=0o700, exist_ok=True)
            monkeypatch = request.getfixturevalue("monkeypatch")
            monkeypatch.setenv("BATCHAI_HOME", str(moved))
            monkeypatch.setenv("BATCHAI_SHARED_DIR", str(shared))
            request.addfinalizer(lambda: shutil.rmtree(moved, ignore_errors=True))
        home = moved
    return EngineFolders(home=home, out=tmp_path / "out", scratch=scratch)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def home(home, engine, tmp_path, request):
    """tests/conftest.py's $BATCHAI_HOME, or the engine's own (engine_folders)."""
    return engine_folders(engine, home, tmp_path, request).home


@pytest.fixture
def engine_lab(engine, lab, tmp_path, request) -> EngineLab:  # noqa: F811
    """The jobs lab with cluster "c" of two nodes on `engine` (local, slurm)."""
    slurm = request.getfixturevalue("slurm") if engine == "slurm" else None
    # The lab made "c" as a one-node local cluster; it is made again here on the engine.
    deleted = lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "c", "-y")
    assert deleted.code == 0, deleted.err
    folders = engine_folders(engine, lab.home, tmp_path, request)
    extra: tuple[str, ...] = ()
    if engine == "slurm":
        cluster_file = tmp_path / "cluster.json"
        engine_settings = {"type": "slurm", "partition": SLURM_PARTITION}
        cluster_file.write_text(json.dumps({"properties": {"engine": engine_settings}}))
        extra = ("-f", str(cluster_file))
    shown = lab.cluster("c", NODES, *extra)
    assert shown["engine"]["type"] == engine, shown
    return EngineLab(
        lab.batchai, lab.tmp, lab.home, engine=engine, out=folders.out, scratch=folders.scratch, slurm=slurm
    )
