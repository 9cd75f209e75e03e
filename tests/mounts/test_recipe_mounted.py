"""The TensorFlow-GPU-Distributed recipe's job.json, as the docs give it, running with real mounts:
its two File shares over SMB (Samba serving the Files emulator's folders), its blob container
through rclone azureblob on Azurite, on two nodes, one parameter server and two workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batchai_cli.agent import mounts
from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[1] / "data/corpus/batchai-recipes/from-docs/configs"
RECIPE = CONFIGS / "TensorFlow__TensorFlow-GPU-Distributed__cli-instructions__block02__config.json"
SCRIPT = b"""
import argparse, os, time
parser = argparse.ArgumentParser()
for name in ("job_name", "task_index", "checkpoint_dir", "log_dir", "data_dir", "ps_hosts", "worker_hosts"):
    parser.add_argument("--" + name, default="")
args, _ = parser.parse_known_args()
if args.job_name == "ps":
    print("ps serving", open(os.path.join(args.data_dir, "train.txt")).read(), flush=True)
    open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "ps-ready"), "w").close()
    time.sleep(600)
else:
    # Workers wait for their parameter server, as TensorFlow's do: the ps is only stopped once
    # the workers are done, and it must have served by then. Its marker comes through the share.
    deadline = time.time() + 90
    marker = os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "ps-ready")
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.2)
    with open(os.path.join(args.checkpoint_dir, "model-%s.ckpt" % args.task_index), "w") as handle:
        handle.write("weights of worker %s" % args.task_index)
    os.makedirs(args.log_dir, exist_ok=True)
    open(os.path.join(args.log_dir, "events.%s" % args.task_index), "w").write("loss 0.1")
    print("worker", args.task_index, "of", args.worker_hosts)
"""


@pytest.fixture
def recipe_storage(azurite, azfiles_emulator, samba, monkeypatch):
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};AccountKey={azurite.account_key};"
        f"BlobEndpoint={azurite.blob_endpoint};FileEndpoint={azfiles_emulator.endpoint};"
    )
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    monkeypatch.setenv("BATCHAI_SMB_ENDPOINT", samba.endpoint)
    credentials = parse_connection_string(connection)
    stores = {
        "logs": open_store("azurefile://logs", credentials),
        "scripts": open_store("azurefile://scripts", credentials),
        "data": open_store("azureblob://data", credentials),
    }
    for name, store in stores.items():
        store.create_root()
        if name != "data":
            samba.add_share(name, azfiles_emulator.root / name)
    yield stores
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(azurite.connection_string).delete_container("data")
    for name in ("logs", "scripts"):
        shutil.rmtree(azfiles_emulator.root / name, ignore_errors=True)


def test_the_tensorflow_distributed_recipe_runs_mounted(lab, recipe_storage, azurite, tmp_path, no_stale_mounts):
    stores = recipe_storage
    stores["scripts"].write("tensorflow/mnist_replica.py", SCRIPT)
    stores["data"].write("mnist_data/train.txt", b"60000 digits")
    lab.cluster("two", 2)
    created = lab.batchai(
        *("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "tf", "-c", "two", "-f", str(RECIPE)),
        *("--storage-account-name", azurite.account_name, "--storage-account-key", azurite.account_key),
        "--no-container",
    )
    assert created.code == 0, created.err
    segment = created.json()["jobOutputDirectoryPathSegment"]
    waited = lab.wait("tf", timeout=120)
    logs = stores["logs"]
    names = sorted(entry.name for entry in logs.list_dir(f"{segment}/stdouterr"))
    log = "".join(logs.read(f"{segment}/stdouterr/{name}").decode() for name in names if name.startswith("execution"))
    assert waited.code == 0, log
    assert logs.read(f"{segment}/outputs/Models/model-0.ckpt") == b"weights of worker 0"
    assert logs.read(f"{segment}/outputs/Models/model-1.ckpt") == b"weights of worker 1"
    assert logs.read(f"{segment}/outputs/Logs/events.1") == b"loss 0.1"
    assert "with rclone smb (no kernel cifs mount: " in log
    assert "at $AZ_BATCHAI_JOB_MOUNT_ROOT/data with rclone azureblob (blobfuse2 not installed)." in log
    assert log.count("Mounted ") == 6  # three volumes on each of two nodes
    ps_out = [name for name in names if name.startswith("stdout-ps")]
    assert ps_out and b"ps serving 60000 digits" in logs.read(f"{segment}/stdouterr/{ps_out[0]}")
    assert mounts.mount_points(str(lab.home)) == []
