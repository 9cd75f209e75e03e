"""TensorFlow on several nodes of a local cluster: parameter servers and workers placed over the
nodes, their host lists and TF_CONFIG, and the servers stopped when the workers are done. (Task
indexes, host lists and MPI on two nodes of every engine: tests/engines/test_contract.py.)"""

from __future__ import annotations

import json

import pytest

SCRIPT = """
import json, os, sys
keys = ["AZ_BATCHAI_TASK_INDEX", "AZ_BATCHAI_PS_HOSTS", "AZ_BATCHAI_WORKER_HOSTS", "TF_CONFIG", "AZ_BATCHAI_JOB_TEMP"]
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
