"""What each toolkit runs on each node of a job, and where its output goes.

`plan(properties, task_index, hosts, ...)` returns the processes one node starts. It is pure (no
I/O), so every toolkit's launch is tested exactly. The README's toolkit table says the same.

    toolkit                 on the master node (task 0)                         on other nodes
    customToolkitSettings   commandLine                                         nothing
    customMpiSettings       mpirun -np P commandLine                            nothing (mpirun reaches them)
    horovodSettings         mpirun -np P python script args                     nothing
    chainerSettings         python script args, or mpirun -np P ... if P > 1    nothing
    cntkSettings            python script args / cntk configFile=... args,      nothing
                            under mpirun -np P when P > 1
    caffeSettings           caffe train --solver=config args / python script,   nothing
                            under mpirun -np P when P > 1
    caffe2Settings          python script args                                  python script args
    pyTorchSettings         python script args (mpirun -np P with MPI backend)  python script args
    tensorFlowSettings      master (worker 0) and parameter servers/workers     the workers and parameter
                            placed round-robin over the nodes                   servers placed there

P is processCount, defaulting to nodeCount. One process on one node writes stdout.txt/stderr.txt;
per-worker processes write stdout-wk-<i>.txt (TensorFlow: also stdout-ps-<i>.txt), as Batch AI did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

TOOLKITS = (
    "customToolkitSettings",
    "customMpiSettings",
    "horovodSettings",
    "chainerSettings",
    "cntkSettings",
    "caffeSettings",
    "caffe2Settings",
    "pyTorchSettings",
    "tensorFlowSettings",
)


@dataclass(frozen=True)
class Launch:
    """One process of a job on one node: a bash command line, its log file names, extra variables."""

    command: str
    stdout: str
    stderr: str
    env: dict[str, str] = field(default_factory=dict)
    role: str = "master"


@dataclass(frozen=True)
class Cluster:
    """Where the job's processes are: one host name per node, and free ports to give out."""

    hosts: list[str]
    ports: list[int]

    def port(self, index: int) -> int:
        return self.ports[index % len(self.ports)] if self.ports else 2222 + index


def toolkit_of(properties: dict) -> str:
    for key in TOOLKITS:
        if properties.get(key) is not None:
            return key
    return "customToolkitSettings"


def _python(settings: dict, default_python: str) -> str:
    script = settings.get("pythonScriptFilePath") or ""
    interpreter = settings.get("pythonInterpreterPath") or default_python
    args = settings.get("commandLineArgs") or ""
    return " ".join(part for part in (interpreter, script, args) if part)


def mpirun(process_count: int, command: str, mpi_options: str) -> str:
    """The Open MPI launch Batch AI used: every rank started from the master with the host file."""
    return f"mpirun {mpi_options} --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np {process_count} {command}".replace("  ", " ")


def _single(command: str) -> list[Launch]:
    return [Launch(command, "stdout.txt", "stderr.txt")]


def plan(
    properties: dict, task_index: int, cluster: Cluster, *, default_python: str = "python", mpi_options: str = ""
) -> list[Launch]:
    """The processes node `task_index` starts for this job (an empty list: the node only hosts
    processes that mpirun or the master starts)."""
    key = toolkit_of(properties)
    settings = properties.get(key) or {}
    node_count = len(cluster.hosts)
    count = int(settings.get("processCount") or node_count)
    master = task_index == 0

    def maybe_mpi(command: str) -> list[Launch]:
        if not master:
            return []
        return _single(mpirun(count, command, mpi_options) if count > 1 or node_count > 1 else command)

    if key == "customToolkitSettings":
        return _single(settings.get("commandLine") or "") if master else []
    if key == "customMpiSettings":
        return _single(mpirun(count, settings["commandLine"], mpi_options)) if master else []
    if key == "horovodSettings":
        return _single(mpirun(count, _python(settings, default_python), mpi_options)) if master else []
    if key == "chainerSettings":
        return maybe_mpi(_python(settings, default_python))
    if key == "cntkSettings":
        if settings.get("configFilePath") and not settings.get("pythonScriptFilePath"):
            command = " ".join(
                part
                for part in ("cntk", f"configFile={settings['configFilePath']}", settings.get("commandLineArgs") or "")
                if part
            )
        else:
            command = _python(settings, default_python)
        return maybe_mpi(command)
    if key == "caffeSettings":
        if settings.get("configFilePath"):
            command = " ".join(
                part
                for part in (
                    "caffe",
                    "train",
                    f"--solver={settings['configFilePath']}",
                    settings.get("commandLineArgs") or "",
                )
                if part
            )
        else:
            command = _python(settings, default_python)
        return maybe_mpi(command)
    if key == "caffe2Settings":
        return [_worker(_python(settings, default_python), task_index, node_count)]
    if key == "pyTorchSettings":
        backend = (settings.get("communicationBackend") or "").lower()
        if backend == "mpi":
            return maybe_mpi(_python(settings, default_python))
        return [_worker(_python(settings, default_python), task_index, node_count)]
    if key == "tensorFlowSettings":
        return _tensorflow(settings, task_index, cluster, default_python)
    raise ValueError(f"unknown toolkit {key}")


def _worker(command: str, task_index: int, node_count: int) -> Launch:
    if node_count == 1:
        return Launch(command, "stdout.txt", "stderr.txt", {"AZ_BATCHAI_TASK_INDEX": "0"})
    return Launch(
        command,
        f"stdout-wk-{task_index}.txt",
        f"stderr-wk-{task_index}.txt",
        {"AZ_BATCHAI_TASK_INDEX": str(task_index)},
        role="worker",
    )


def tensorflow_layout(settings: dict, cluster: Cluster) -> tuple[list[str], list[str]]:
    """(parameter server addresses, worker addresses), placed round-robin over the nodes.

    Not distributed (no workerCount or parameterServerCount, one node): one worker, no ps.
    """
    node_count = len(cluster.hosts)
    distributed = (
        settings.get("workerCount") is not None or settings.get("parameterServerCount") is not None or node_count > 1
    )
    workers = int(settings.get("workerCount") or node_count) if distributed else 1
    servers = (
        int(settings.get("parameterServerCount") if settings.get("parameterServerCount") is not None else 1)
        if distributed
        else 0
    )
    ps = [f"{cluster.hosts[i % node_count]}:{cluster.port(i)}" for i in range(servers)]
    wk = [f"{cluster.hosts[i % node_count]}:{cluster.port(servers + i)}" for i in range(workers)]
    return ps, wk


def _tensorflow(settings: dict, task_index: int, cluster: Cluster, default_python: str) -> list[Launch]:
    node_count = len(cluster.hosts)
    ps, wk = tensorflow_layout(settings, cluster)
    script = settings.get("pythonScriptFilePath") or ""
    interpreter = settings.get("pythonInterpreterPath") or default_python
    common = {"AZ_BATCHAI_PS_HOSTS": ",".join(ps), "AZ_BATCHAI_WORKER_HOSTS": ",".join(wk)}
    launches = []
    for role, addresses, args_key in (("ps", ps, "parameterServerCommandLineArgs"), ("wk", wk, None)):
        for index in range(len(addresses)):
            if index % node_count != task_index:
                continue
            if role == "wk":
                args_key = "masterCommandLineArgs" if index == 0 else "workerCommandLineArgs"
            task_type = "ps" if role == "ps" else "master" if index == 0 else "worker"
            tf_config = {
                "cluster": {"ps": ps, "worker": wk} if ps else {"worker": wk},
                "task": {"type": task_type, "index": index},
                "environment": "cloud",
            }
            command = " ".join(part for part in (interpreter, script, settings.get(args_key) or "") if part)
            launches.append(
                Launch(
                    command,
                    f"stdout-{role}-{index}.txt",
                    f"stderr-{role}-{index}.txt",
                    {**common, "AZ_BATCHAI_TASK_INDEX": str(index), "TF_CONFIG": json.dumps(tf_config)},
                    role="ps" if role == "ps" else "master" if index == 0 else "worker",
                )
            )
    return launches


def needs_mpi(properties: dict, node_count: int) -> bool:
    """Whether the master's command line starts with mpirun (so Open MPI must be on the node)."""
    key = toolkit_of(properties)
    settings = properties.get(key) or {}
    count = int(settings.get("processCount") or node_count)
    if key in ("customMpiSettings", "horovodSettings"):
        return True
    if key in ("chainerSettings", "cntkSettings", "caffeSettings"):
        return count > 1 or node_count > 1
    if key == "pyTorchSettings":
        return (settings.get("communicationBackend") or "").lower() == "mpi" and (count > 1 or node_count > 1)
    return False


def missing_mpi(properties: dict, node_count: int, path: str | None, *, in_container: bool = False) -> dict | None:
    """The MpiNotFound error when this job's command line needs mpirun and none is on `path`, else None.

    The node agent asks after jobPreparation has run: recipes install Open MPI there (the Horovod
    ones do), and the job's own PATH is the one that counts. In a container the image decides."""
    import shutil

    from batchai_cli.models import batchai_error

    if in_container or not needs_mpi(properties, node_count) or shutil.which("mpirun", path=path):
        return None
    return batchai_error(
        "MpiNotFound",
        f"This {toolkit_of(properties)} job starts its processes with mpirun (Open MPI), which is not on "
        "this node's PATH after the job preparation ran.",
        hint="apt-get install openmpi-bin (on the node, or in the job's jobPreparation), "
        "or run the job in a container image that has it.",
    )


def host_file(hosts: list[str], slots: int) -> str:
    """The Open MPI host file: one line per distinct host with its slots."""
    seen: dict[str, int] = {}
    for host in hosts:
        seen[host] = seen.get(host, 0) + slots
    return "".join(f"{host} slots={count}\n" for host, count in seen.items())
