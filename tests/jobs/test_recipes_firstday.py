"""The recipes a new user tries first, run as they are on a local cluster against the Files emulator.

The Horovod recipes install Open MPI in their own jobPreparation (`apt install mpi-default-bin`).
Here the node has no mpirun: the job's PATH is this machine's without Open MPI, and stand-in `apt`
and `pip` commands on it put a stand-in `mpirun` into a folder on that PATH, as apt does. Nothing is
installed system-wide.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string
from tests.jobs.conftest import custom as custom_job

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).resolve().parent.parent / "data" / "corpus" / "batchai-recipes"
MPI_COMMANDS = {"mpirun", "mpiexec", "orterun", "oshrun", "mpiexec.openmpi", "mpirun.openmpi", "orted"}

STANDIN_APT = """#!/bin/sh
# apt, as far as the recipes use it: `apt install ... mpi-default-bin` puts mpirun on the PATH.
case " $* " in
  *" install "*mpi-default-bin*)
    cp "$STANDIN_MPIRUN" "$STANDIN_PREFIX/mpirun.$$" && chmod +x "$STANDIN_PREFIX/mpirun.$$" &&
      mv -f "$STANDIN_PREFIX/mpirun.$$" "$STANDIN_PREFIX/mpirun" && echo "Setting up mpi-default-bin" ;;
  *) echo "apt $*" ;;
esac
"""

# Open MPI's mpirun, as far as the toolkits use it: skip the options, start -np ranks in turn.
STANDIN_MPIRUN = """#!/bin/sh
np=1
while [ $# -gt 0 ]; do
  case "$1" in
    -np|-n) np=$2; shift 2 ;;
    --hostfile|-hostfile|-x) shift 2 ;;
    -mca|--mca) shift 3 ;;
    -*) shift ;;
    *) break ;;
  esac
done
rank=0
while [ $rank -lt $np ]; do
  OMPI_COMM_WORLD_RANK=$rank OMPI_COMM_WORLD_SIZE=$np "$@" || exit $?
  rank=$((rank + 1))
done
"""

TRAIN = b"""import os
rank, size = os.environ["OMPI_COMM_WORLD_RANK"], os.environ["OMPI_COMM_WORLD_SIZE"]
print(f"rank {rank} of {size}", flush=True)
"""


@pytest.fixture
def node_without_mpi(tmp_path, monkeypatch) -> Path:
    """This machine's PATH without Open MPI, plus stand-in apt and pip, and an empty folder that
    "apt install" puts mpirun into (returned)."""
    tools = tmp_path / "system-bin"
    tools.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = tools / entry.name
            if entry.name in MPI_COMMANDS or target.exists() or target.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    prefix = tmp_path / "usr-local-bin"
    prefix.mkdir()
    for name, text in (("apt", STANDIN_APT), ("pip", 'echo "Successfully installed horovod"\n')):
        (tools / name).unlink(missing_ok=True)
        (tools / name).write_text(text if text.startswith("#!") else "#!/bin/sh\n" + text)
        (tools / name).chmod(0o755)
    mpirun = tmp_path / "standin-mpirun"
    mpirun.write_text(STANDIN_MPIRUN)
    monkeypatch.setenv("STANDIN_MPIRUN", str(mpirun))
    monkeypatch.setenv("STANDIN_PREFIX", str(prefix))
    monkeypatch.setenv("PATH", f"{prefix}{os.pathsep}{tools}")
    return prefix


@pytest.fixture
def shares(azfiles_emulator, monkeypatch):
    """The recipes' `logs` and `scripts` shares, made fresh on the Files emulator; the account is
    given to `job create` with --storage-account-name/--storage-account-key."""
    connection = azfiles_emulator.connection_string
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    credentials = parse_connection_string(connection)
    suffix = uuid.uuid4().hex[:8]
    names = {"logs": f"logs{suffix}", "scripts": f"scripts{suffix}"}
    stores = {role: open_store(f"azurefile://{name}", credentials) for role, name in names.items()}
    for store in stores.values():
        store.create_root()
    return names, stores, credentials


def horovod_recipe(file_name: str, names: dict) -> dict:
    """The recipe as published, with its share names made unique for this test."""
    document = json.loads((RECIPES / file_name).read_text())
    for share in document["properties"]["mountVolumes"]["azureFileShares"]:
        role = share["relativeMountPath"]
        share["azureFileUrl"] = share["azureFileUrl"].rsplit("/", 1)[0] + "/" + names[role]
    return document


def submit_recipe(lab, name: str, document: dict, credentials, *extra: str):
    path = lab.tmp / f"{name}.json"
    path.write_text(json.dumps(document))
    created = lab.create(
        name,
        path,
        "--no-container",
        "--storage-account-name",
        credentials.account_name,
        "--storage-account-key",
        credentials.account_key,
        *extra,
        cluster="two",
    )
    assert created.code == 0, created.err
    return created


@pytest.mark.parametrize(
    ("recipe", "script"),
    [
        ("Horovod__Horovod-Tensorflow__job.json", "horovod/tensorflow_mnist.py"),
        ("Horovod__Horovod-PyTorch__job.json", "horovod/pytorch_mnist.py"),
    ],
)
def test_horovod_recipe_runs_with_mpi_from_its_own_job_preparation(
    lab, node_without_mpi, shares, recipe, script, tmp_path
):
    names, stores, credentials = shares
    stores["scripts"].write(script, TRAIN)
    lab.cluster("two", 2)
    document = horovod_recipe(recipe, names)
    if "outputDirectories" in document["properties"]:  # PyTorch's: on the cluster's external volume
        document["properties"]["outputDirectories"][0]["pathPrefix"] = str(tmp_path / "external")
    created = submit_recipe(lab, "horovod", document, credentials, "--verbose")
    shown = created.json()
    # job create says where each volume's storage is, and why.
    for share in ("logs", "scripts"):
        assert (
            f"INFO: Storage endpoint of $AZ_BATCHAI_JOB_MOUNT_ROOT/{share}: {credentials.file_endpoint} "
            "(FileEndpoint of AZURE_STORAGE_CONNECTION_STRING)\n"
        ) in created.err
    waited = lab.wait("horovod", timeout=120)
    stdouterr = f"{shown['jobOutputDirectoryPathSegment']}/stdouterr"
    assert waited.code == 0, waited.err
    assert stores["logs"].read(f"{stdouterr}/stdout.txt") == b"rank 0 of 2\nrank 1 of 2\n"
    assert (node_without_mpi / "mpirun").exists()
    prep_logs = [e.path for e in stores["logs"].walk() if "stdout-job_prep" in e.path]
    # The master's preparation installed Open MPI before its check (the other node's may still have
    # been running when the job ended: nodes do not wait for each other's preparation).
    assert prep_logs


def test_mpi_still_missing_after_the_preparation_says_so_with_no_exit_code(lab, node_without_mpi, shares):
    names, stores, credentials = shares
    stores["scripts"].write("horovod/tensorflow_mnist.py", TRAIN)
    lab.cluster("two", 2)
    document = horovod_recipe("Horovod__Horovod-Tensorflow__job.json", names)
    document["properties"]["jobPreparation"]["commandLine"] = "echo preparing; apt update"
    shown = submit_recipe(lab, "nompi", document, credentials).json()
    waited = lab.wait("nompi", timeout=120)
    assert waited.code == 1
    assert "None" not in waited.err
    assert "Job failed at " in waited.err and "before its command gave an exit code" in waited.err
    assert "Details:\n \n" not in waited.err
    info = lab.show("nompi")["executionInfo"]
    assert info["exitCode"] is None
    codes = {error["code"] for error in info["errors"]}
    assert "MpiNotFound" in codes
    (mpi,) = [error for error in info["errors"] if error["code"] == "MpiNotFound"][:1]
    assert "after the job preparation ran" in mpi["message"]
    assert f"Error message: {mpi['message']}\nDetails:\n hint: apt-get install openmpi-bin" in waited.err
    # The preparation ran first, on each node.
    stdouterr = f"{shown['jobOutputDirectoryPathSegment']}/stdouterr"
    preps = sorted(e.path for e in stores["logs"].walk() if "stdout-job_prep" in e.path)
    assert preps
    assert stores["logs"].read(preps[0]).startswith(b"preparing\n")
    assert stdouterr in preps[0]


def test_a_connection_string_without_file_endpoint_fails_at_job_create(lab, azurite, shares, monkeypatch):
    """Azurite's connection string (Blob only) for a recipe on File shares: said at once, not by a
    LogShippingFailed on the node half a minute later."""
    names = shares[0]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    lab.cluster("two", 2)
    path = lab.tmp / "nofile.json"
    path.write_text(json.dumps(horovod_recipe("Horovod__Horovod-Tensorflow__job.json", names)))
    started = time.monotonic()
    created = lab.create("nofile", path, "--no-container", cluster="two")
    assert time.monotonic() - started < 10
    assert created.code == 1
    assert created.err == (
        'ERROR: The Azure File share at $AZ_BATCHAI_JOB_MOUNT_ROOT/logs is on storage account "devstoreaccount1", '
        "and AZURE_STORAGE_CONNECTION_STRING names it with BlobEndpoint but no FileEndpoint: it would be reached at "
        "the public http://devstoreaccount1.file.core.windows.net, which cannot be meant. Add FileEndpoint=<its URL> "
        "to AZURE_STORAGE_CONNECTION_STRING (`batchai emulators start` prints one naming both emulators).\n"
    )
    assert lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp").json() == []


def _stream(lab, job: str, name: str):
    return lab.batchai("job", "file", "stream", "-g", "rg", "-w", "ws", "-e", "exp", "-j", job, "-f", name)


def test_streaming_stdout_txt_of_a_multinode_pytorch_job_says_which_files_it_has(lab, tmp_path):
    lab.cluster("two", 2)
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(tmp_path / "out"),
        "jobPreparation": {"commandLine": "echo prep"},
        "pyTorchSettings": {
            "pythonScriptFilePath": "-c",
            "pythonInterpreterPath": "python3",
            "commandLineArgs": "\"import os; print('rank', os.environ['AZ_BATCHAI_TASK_INDEX'])\"",
        },
    }
    assert lab.submit("torch", job, cluster="two").code == 0
    streamed = _stream(lab, "torch", "stdout.txt")
    assert streamed.code == 3
    assert streamed.err.startswith(
        'WARNING: The file "stdout.txt" not found. Waiting for the job to generate it. This job writes '
        "stdout-wk-0.txt, stdout-wk-1.txt: did you mean stdout-wk-0.txt?\n"
    )
    assert streamed.err.endswith(
        'ERROR: The file "stdout.txt" not found for the completed job. It has stdout-wk-0.txt, stdout-wk-1.txt: did '
        "you mean stdout-wk-0.txt?\n"
    )
    # The same for the per-node preparation logs.
    prep = _stream(lab, "torch", "stdout-job_prep.txt")
    assert prep.code == 3
    assert "It has stdout-job_prep-tvm-" in prep.err and "did you mean stdout-job_prep-tvm-" in prep.err
    assert _stream(lab, "torch", "stdout-wk-1.txt").out == "rank 1\n"


def test_job_create_stream_follows_the_main_output_whatever_it_is_called(lab, tmp_path):
    """TensorFlow with a parameter server on node 0: the master worker's stdout-wk-0.txt, not stdout.txt
    nor the parameter server's stdout-ps-0.txt."""
    lab.cluster("two", 2)
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(tmp_path / "out"),
        "tensorFlowSettings": {
            "pythonScriptFilePath": "-c",
            "pythonInterpreterPath": "python3",
            "parameterServerCount": 1,
            "workerCount": 2,
            "masterCommandLineArgs": "\"print('master')\"",
            "workerCommandLineArgs": "\"print('worker')\"",
            "parameterServerCommandLineArgs": "\"import time; print('ps'); time.sleep(60)\"",
        },
    }
    created = lab.submit("tf", job, "--stream", cluster="two")
    assert created.code == 0, created.err
    assert created.out == "master\n"


def test_a_terminated_job_has_one_error_that_says_so(lab, tmp_path):
    """A script that ends with its own non-zero code when stopped, as training scripts do: the job
    was terminated, and JobTerminated alone says so (not JobFailed beside it)."""
    from tests.jobs.conftest import until, wait_state

    ready = tmp_path / "ready"
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(300)\n"
    )
    (tmp_path / "train.py").write_text(script)
    lab.submit("long", custom_job(f"python3 {tmp_path / 'train.py'}", tmp_path / "out"))
    wait_state(lab, "long", ("running",))
    until(ready.exists, 30, "the script to be ready")
    assert lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "long", "-y").code == 0
    info = lab.show("long")["executionInfo"]
    assert info["exitCode"] == 1
    assert [e["code"] for e in info["errors"]] == ["JobTerminated"]


def test_job_show_records_that_a_no_container_job_ran_on_the_host(lab, tmp_path):
    job = custom_job(
        "echo on the host", tmp_path / "out", containerSettings={"imageSourceRegistry": {"image": "alpine"}}
    )
    created = lab.submit("hosted", job, "--no-container")
    assert created.code == 0, created.err
    assert "Running on the host, not in the container image alpine" in created.err
    assert lab.wait("hosted").code == 0
    shown = lab.show("hosted")
    assert shown["noContainer"] is True
    assert shown["containerSettings"]["imageSourceRegistry"]["image"] == "alpine"
    plain = lab.submit("plain", custom_job("echo plain", tmp_path / "out"))
    assert "noContainer" not in plain.json()
