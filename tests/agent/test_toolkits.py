"""How each toolkit is launched on each node: the exact command lines and log file names."""

from __future__ import annotations

import json

import pytest

from batchai_cli.agent.toolkits import Cluster, Launch, host_file, needs_mpi, plan

ONE = Cluster(hosts=["127.0.0.1"], ports=[5000, 5001, 5002])
TWO = Cluster(hosts=["10.0.0.4", "10.0.0.5"], ports=[5000, 5001, 5002, 5003, 5004])
MPI = "--allow-run-as-root"


def commands(properties, cluster, task):
    return [
        (launch.command, launch.stdout, launch.stderr, launch.role)
        for launch in plan(properties, task, cluster, default_python="python", mpi_options=MPI)
    ]


def test_custom_toolkit_runs_on_the_master_only():
    job = {"customToolkitSettings": {"commandLine": "echo hi"}}
    assert commands(job, TWO, 0) == [("echo hi", "stdout.txt", "stderr.txt", "master")]
    assert commands(job, TWO, 1) == []


@pytest.mark.parametrize(
    "key,settings,expected",
    [
        (
            "customMpiSettings",
            {"commandLine": "./a.out", "processCount": 4},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 4 ./a.out",
        ),
        (
            "horovodSettings",
            {"pythonScriptFilePath": "train.py", "commandLineArgs": "--lr 1"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 python train.py --lr 1",
        ),
        (
            "chainerSettings",
            {"pythonScriptFilePath": "t.py", "processCount": 8, "pythonInterpreterPath": "/py"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 8 /py t.py",
        ),
        (
            "cntkSettings",
            {"configFilePath": "net.cntk", "commandLineArgs": "a=1"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 cntk configFile=net.cntk a=1",
        ),
        (
            "cntkSettings",
            {"pythonScriptFilePath": "t.py", "languageType": "Python"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 python t.py",
        ),
        (
            "caffeSettings",
            {"configFilePath": "solver.prototxt"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 caffe train"
            " --solver=solver.prototxt",
        ),
        (
            "pyTorchSettings",
            {"pythonScriptFilePath": "t.py", "communicationBackend": "MPI"},
            "mpirun --allow-run-as-root --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 python t.py",
        ),
    ],
)
def test_mpi_toolkits_start_every_rank_from_the_master(key, settings, expected):
    job = {key: settings}
    assert commands(job, TWO, 0) == [(expected, "stdout.txt", "stderr.txt", "master")]
    assert commands(job, TWO, 1) == []
    assert needs_mpi(job, 2)


def test_one_process_on_one_node_needs_no_mpirun():
    for key in ("chainerSettings", "cntkSettings", "caffeSettings"):
        job = {key: {"pythonScriptFilePath": "t.py", "commandLineArgs": "x"}}
        assert commands(job, ONE, 0) == [("python t.py x", "stdout.txt", "stderr.txt", "master")]
        assert not needs_mpi(job, 1)
    assert needs_mpi({"customMpiSettings": {"commandLine": "x"}}, 1)


def test_per_node_toolkits_write_per_worker_logs():
    job = {"pyTorchSettings": {"pythonScriptFilePath": "t.py", "commandLineArgs": "--rank $AZ_BATCHAI_TASK_INDEX"}}
    assert plan(job, 1, TWO) == [
        Launch(
            "python t.py --rank $AZ_BATCHAI_TASK_INDEX",
            "stdout-wk-1.txt",
            "stderr-wk-1.txt",
            {"AZ_BATCHAI_TASK_INDEX": "1"},
            role="worker",
        )
    ]
    caffe2 = {"caffe2Settings": {"pythonScriptFilePath": "r.py"}}
    assert [launch.stdout for launch in plan(caffe2, 0, ONE)] == ["stdout.txt"]
    assert [launch.stdout for launch in plan(caffe2, 0, TWO)] == ["stdout-wk-0.txt"]


def test_tensorflow_single_process_is_worker_zero():
    job = {"tensorFlowSettings": {"pythonScriptFilePath": "m.py", "masterCommandLineArgs": "--steps 10"}}
    (launch,) = plan(job, 0, ONE)
    assert (launch.command, launch.stdout, launch.role) == ("python m.py --steps 10", "stdout-wk-0.txt", "master")
    assert json.loads(launch.env["TF_CONFIG"]) == {
        "cluster": {"worker": ["127.0.0.1:5000"]},
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }


def test_tensorflow_distributed_layout_round_robin():
    job = {
        "tensorFlowSettings": {
            "pythonScriptFilePath": "m.py",
            "parameterServerCount": 1,
            "workerCount": 3,
            "masterCommandLineArgs": "M",
            "workerCommandLineArgs": "W",
            "parameterServerCommandLineArgs": "P",
        }
    }
    node0 = plan(job, 0, TWO)
    node1 = plan(job, 1, TWO)
    assert [(x.command, x.stdout, x.role) for x in node0] == [
        ("python m.py P", "stdout-ps-0.txt", "ps"),
        ("python m.py M", "stdout-wk-0.txt", "master"),
        ("python m.py W", "stdout-wk-2.txt", "worker"),
    ]
    assert [(x.command, x.stdout, x.role) for x in node1] == [("python m.py W", "stdout-wk-1.txt", "worker")]
    assert node1[0].env["AZ_BATCHAI_PS_HOSTS"] == "10.0.0.4:5000"
    assert node1[0].env["AZ_BATCHAI_WORKER_HOSTS"] == "10.0.0.4:5001,10.0.0.5:5002,10.0.0.4:5003"
    assert node1[0].env["AZ_BATCHAI_TASK_INDEX"] == "1"


def test_host_file_counts_slots_per_host():
    assert host_file(["localhost", "localhost"], 4) == "localhost slots=8\n"
    assert host_file(["10.0.0.4", "10.0.0.5"], 2) == "10.0.0.4 slots=2\n10.0.0.5 slots=2\n"
