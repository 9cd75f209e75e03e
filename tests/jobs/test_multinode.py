"""Jobs on several nodes of a local cluster: task indexes, host lists, TF_CONFIG, MPI host files,
and parameter servers stopped when the workers are done."""

from __future__ import annotations

import json
import shutil

import pytest

SCRIPT = """
import json, os, sys
keys = ["AZ_BATCHAI_TASK_INDEX", "AZ_BATCHAI_PS_HOSTS", "AZ_BATCHAI_WORKER_HOSTS", "TF_CONFIG",
        "AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_PYTORCH_BACKEND", "AZ_BATCHAI_JOB_TEMP",
        "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_MPI_HOST_FILE"]
print(json.dumps({"args": sys.argv[1:], **{k: os.environ.get(k) for k in keys}}))
sys.stdout.flush()
import time
ready = os.path.join(os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"], "ps-ready")
if "--job_name=ps" in sys.argv:
    open(ready, "w").close()
    time.sleep(600)   # a parameter server never ends on its own
elif os.environ.get("TF_CONFIG") and "ps" in os.environ["TF_CONFIG"]:
    deadline = time.time() + 30   # a worker waits for its parameter server, as TensorFlow does
    while not os.path.exists(ready) and time.time() < deadline:
        time.sleep(0.05)
"""


@pytest.fixture
def two_nodes(lab, tmp_path):
    lab.cluster("two", 2)
    script = tmp_path / "show.py"
    script.write_text(SCRIPT)
    return script


def _record(folder, name):
    return json.loads((folder / name).read_text())


def test_pytorch_runs_on_every_node_with_its_rank(lab, two_nodes, tmp_path):
    out = tmp_path / "out"
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "pyTorchSettings": {
            "pythonScriptFilePath": str(two_nodes),
            "pythonInterpreterPath": "python3",
            "commandLineArgs": "--rank $AZ_BATCHAI_TASK_INDEX",
            "communicationBackend": "gloo",
        },
    }
    assert lab.submit("torch", job, cluster="two").code == 0
    assert lab.wait("torch").code == 0
    shown = lab.show("torch")
    assert shown["toolType"] == "pytorch"
    folder = out / shown["jobOutputDirectoryPathSegment"] / "stdouterr"
    names = sorted(p.name for p in folder.iterdir())
    nodes = sorted(name[len("execution-") : -len(".log")] for name in names if name.startswith("execution-"))
    assert len(nodes) == 2
    assert names == sorted(
        [f"execution-{n}.log" for n in nodes]
        + ["stderr-wk-0.txt", "stderr-wk-1.txt", "stdout-wk-0.txt", "stdout-wk-1.txt"]
    )
    first, second = _record(folder, "stdout-wk-0.txt"), _record(folder, "stdout-wk-1.txt")
    assert (first["args"], second["args"]) == (["--rank", "0"], ["--rank", "1"])
    assert first["AZ_BATCHAI_TASK_INDEX"] == "0" and second["AZ_BATCHAI_TASK_INDEX"] == "1"
    assert first["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == second["AZ_BATCHAI_PYTORCH_INIT_METHOD"]
    assert first["AZ_BATCHAI_PYTORCH_INIT_METHOD"].startswith("tcp://127.0.0.1:")
    assert first["AZ_BATCHAI_PYTORCH_BACKEND"] == "gloo"
    # Each node has its own job folder; the shared one is shared.
    assert first["AZ_BATCHAI_JOB_TEMP"] != second["AZ_BATCHAI_JOB_TEMP"]
    assert first["AZ_BATCHAI_SHARED_JOB_TEMP"] == second["AZ_BATCHAI_SHARED_JOB_TEMP"]
    assert {
        first["AZ_BATCHAI_JOB_TEMP"].split("/nodes/")[1].split("/")[0],
        second["AZ_BATCHAI_JOB_TEMP"].split("/nodes/")[1].split("/")[0],
    } == set(nodes)


def test_tensorflow_places_servers_and_workers_and_stops_the_servers(lab, two_nodes, tmp_path):
    out = tmp_path / "out"
    args = "--job_name={} --task_index=$AZ_BATCHAI_TASK_INDEX --ps_hosts=$AZ_BATCHAI_PS_HOSTS"
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "tensorFlowSettings": {
            "pythonScriptFilePath": str(two_nodes),
            "pythonInterpreterPath": "python3",
            "parameterServerCount": 1,
            "workerCount": 2,
            "masterCommandLineArgs": args.format("worker"),
            "workerCommandLineArgs": args.format("worker"),
            "parameterServerCommandLineArgs": args.format("ps"),
        },
    }
    assert lab.submit("tf", job, cluster="two").code == 0
    assert lab.wait("tf").code == 0
    shown = lab.show("tf")
    folder = out / shown["jobOutputDirectoryPathSegment"] / "stdouterr"
    ps0, wk0, wk1 = (_record(folder, f"stdout-{n}.txt") for n in ("ps-0", "wk-0", "wk-1"))
    hosts = wk0["AZ_BATCHAI_WORKER_HOSTS"].split(",")
    assert len(hosts) == 2 and all(h.startswith("127.0.0.1:") for h in hosts)
    assert ps0["AZ_BATCHAI_PS_HOSTS"] == wk0["AZ_BATCHAI_PS_HOSTS"] == wk1["AZ_BATCHAI_PS_HOSTS"]
    assert json.loads(wk0["TF_CONFIG"]) == {
        "cluster": {"ps": [wk0["AZ_BATCHAI_PS_HOSTS"]], "worker": hosts},
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }
    assert json.loads(wk1["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}
    assert json.loads(ps0["TF_CONFIG"])["task"] == {"type": "ps", "index": 0}
    assert (wk0["AZ_BATCHAI_TASK_INDEX"], wk1["AZ_BATCHAI_TASK_INDEX"]) == ("0", "1")
    # The parameter server (node 0) and worker 1 (node 1) ran on different nodes.
    assert ps0["AZ_BATCHAI_JOB_TEMP"] == wk0["AZ_BATCHAI_JOB_TEMP"] != wk1["AZ_BATCHAI_JOB_TEMP"]


def test_custom_mpi_starts_every_rank_from_the_master(lab, two_nodes, tmp_path):
    assert shutil.which("mpirun"), "Open MPI is needed: apt-get install openmpi-bin (make test-deps does)"
    out = tmp_path / "out"
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "customMpiSettings": {
            "processCount": 4,
            "commandLine": "python3 -c \"import os; r = os.environ['OMPI_COMM_WORLD_RANK']; "
            "open(os.environ['AZ_BATCHAI_SHARED_JOB_TEMP'] + '/rank-' + r, 'w').write(r)\"",
        },
    }
    assert lab.submit("mpi", job, cluster="two").code == 0
    waited = lab.wait("mpi")
    shown = lab.show("mpi")
    folder = out / shown["jobOutputDirectoryPathSegment"] / "stdouterr"
    assert waited.code == 0, (folder / "stderr.txt").read_text()
    # Every rank ran (ranks' output to one stdout interleaves, so each leaves a file instead).
    shared = lab.home / "shared" / "jobs" / shown["jobOutputDirectoryPathSegment"].rsplit("/", 1)[1]
    assert sorted(p.name for p in shared.glob("rank-*")) == ["rank-0", "rank-1", "rank-2", "rank-3"]
    assert (shared / "hostfile").read_text() == "localhost slots=8\n"


def test_job_node_list_shows_the_nodes_a_running_job_holds(lab, two_nodes, tmp_path):
    import time

    gate = tmp_path / "gate"
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(tmp_path / "out"),
        "caffe2Settings": {
            "pythonScriptFilePath": "-c",
            "pythonInterpreterPath": "python3",
            "commandLineArgs": f"\"import os, time\nwhile not os.path.exists('{gate}'): time.sleep(0.05)\"",
        },
    }
    assert lab.submit("held", job, cluster="two").code == 0
    deadline = time.monotonic() + 30
    while lab.show("held")["executionState"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    nodes = lab.batchai("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "held").json()
    cluster_nodes = lab.batchai("cluster", "node", "list", "-g", "rg", "-w", "ws", "-c", "two").json()
    assert nodes == cluster_nodes
    table = lab.batchai("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "held", "-o", "table")
    assert table.out.splitlines()[0].split() == ["ID", "IP", "SSH", "Port"]
    gate.touch()
    assert lab.wait("held").code == 0
    assert lab.batchai("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "held").json() == []
