"""Mounted volumes against staged copies, on Azurite, in one run (issue 10):

1. time from `job create` to the job's first read of one file in a container of --gib GiB:
   mounted (rclone azureblob) vs `--volumes copy` (goal: under 1 s mounted, whatever the size);
2. bytes Azurite served for that one-file job, counted by a proxy (goal: the file plus listings);
3. sequential read of a 1 GiB blob through the mount vs `storage blob download-batch` (goal >= 0.7);
4. writing a 256 MiB checkpoint through the mount (until it is in storage) vs `storage blob
   upload-batch` of the same file (goal >= 0.7).

    python bench/bench_mount.py [--gib 2]

Prints the figures and their ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
JOB = ("-g", "bench", "-w", "ws", "-e", "exp")


def batchai(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_cli", *args], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )


def fill(container, azurite, gib: int) -> None:
    """gib GiB of 64 MiB shards, copied inside Azurite from one upload."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    container.upload_blob("shards/shard-000.bin", os.urandom(64 * MiB), max_concurrency=4)
    sas = generate_blob_sas(
        azurite.account_name,
        container.container_name,
        "shards/shard-000.bin",
        account_key=azurite.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    source = f"{container.get_blob_client('shards/shard-000.bin').url}?{sas}"
    for index in range(1, gib * 16):
        container.get_blob_client(f"shards/shard-{index:03}.bin").start_copy_from_url(source, requires_sync=True)


def first_read(env: dict, work: Path, azurite, container: str, name: str, *extra: str) -> float:
    """Seconds from `job create` to the job's first read of dataset/one.bin."""
    job = {
        "properties": {
            "nodeCount": 1,
            "customToolkitSettings": {
                "commandLine": f'{sys.executable} -c "import time; '
                "open('$AZ_BATCHAI_JOB_MOUNT_ROOT/data/dataset/one.bin', 'rb').read(1); print(repr(time.time()))\""
            },
            "stdOutErrPathPrefix": str(work / "out"),
            "mountVolumes": {
                "azureBlobFileSystems": [
                    {
                        "accountName": azurite.account_name,
                        "containerName": container,
                        "relativeMountPath": "data",
                        "credentials": {"accountKey": azurite.account_key},
                    }
                ]
            },
        }
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(job))
    start = time.time()
    created = batchai(env, "job", "create", *JOB, "-n", name, "-c", "c", "-f", str(path), *extra)
    batchai(env, "job", "wait", *JOB, "-n", name, "--interval", "0.1", "--timeout", "900")
    segment = json.loads(created.stdout)["jobOutputDirectoryPathSegment"]
    return float((work / "out" / segment / "stdouterr" / "stdout.txt").read_text()) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=2, help="size of the big container in GiB")
    args = parser.parse_args()
    from azure.storage.blob import BlobServiceClient

    from batchai_cli.agent import volumes
    from batchai_cli.storage.paths import Volume
    from tests.fixtures.azurite import start_azurite, stop_azurite
    from tests.mounts.counting_proxy import CountingProxy

    work = Path(tempfile.mkdtemp(prefix="bench-mount-"))
    azurite = start_azurite(work)
    proxy = CountingProxy(azurite.port)
    connection = azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/")
    env = {
        **os.environ,
        "BATCHAI_HOME": str(work / "home"),
        "NO_COLOR": "1",
        "AZURE_STORAGE_CONNECTION_STRING": connection,
    }
    try:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        big = service.create_container(f"big{uuid.uuid4().hex[:8]}")
        fill(big, azurite, args.gib)
        big.upload_blob("dataset/one.bin", os.urandom(4 * MiB))
        batchai(env, "workspace", "create", "-g", "bench", "-n", "ws", "-o", "none")
        batchai(env, "experiment", "create", *JOB[:4], "-n", "exp", "-o", "none")
        batchai(
            env,
            "cluster",
            "create",
            *JOB[:4],
            "-n",
            "c",
            "-s",
            "Standard_NC6",
            "-t",
            "1",
            "-u",
            "u",
            "-p",
            "Pw0rd!",
            "-o",
            "none",
        )
        before = proxy.served
        mounted = first_read(env, work, azurite, big.container_name, "mounted")
        fetched = proxy.served - before
        staged = first_read(env, work, azurite, big.container_name, "staged", "--volumes", "copy")
        print(f"job create -> first read of one file in a {args.gib} GiB container:")
        print(
            f"  mounted {mounted:.2f} s, staged copy {staged:.2f} s: {staged / mounted:.1f}x faster (goal: under 1 s)"
        )
        extra = (fetched - 4 * MiB) / 1024
        print(f"  bytes served for the mounted job: the 4 MiB file + {extra:.1f} KiB (goal: the file plus listings)")

        # Sequential read and checkpoint write, through a mount placed as the agent places it.
        io = service.create_container(f"io{uuid.uuid4().hex[:8]}")
        io.upload_blob("big.bin", os.urandom(1024 * MiB), max_concurrency=4)
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
        volume = Volume(
            "job",
            "io",
            "azureBlob",
            {
                "accountName": azurite.account_name,
                "containerName": io.container_name,
                "credentials": {"accountKey": azurite.account_key},
            },
        )
        root = work / "node" / "mounts"
        placed = volumes.place(volume, str(root), lambda text: None, mode="mount")
        start = time.monotonic()
        with open(os.path.join(placed.path, "big.bin"), "rb") as handle:
            while handle.read(8 * MiB):
                pass
        read_mount = time.monotonic() - start
        checkpoint = work / "ckpt" / "model.ckpt"
        checkpoint.parent.mkdir()
        checkpoint.write_bytes(os.urandom(256 * MiB))
        start = time.monotonic()
        with open(checkpoint, "rb") as source, open(os.path.join(placed.path, "model.ckpt"), "wb") as target:
            while chunk := source.read(8 * MiB):
                target.write(chunk)
        volumes.release(placed, lambda text: None)  # returns once rclone has uploaded it
        write_mount = time.monotonic() - start
        plain = {**env, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        start = time.monotonic()
        batchai(
            plain,
            "storage",
            "blob",
            "download-batch",
            "-s",
            io.container_name,
            "-d",
            str(work / "dl"),
            "--pattern",
            "big.bin",
        )
        read_copy = time.monotonic() - start
        start = time.monotonic()
        batchai(
            plain,
            "storage",
            "blob",
            "upload-batch",
            "-d",
            io.container_name,
            "-s",
            str(checkpoint.parent),
            "--destination-path",
            "up",
        )
        write_copy = time.monotonic() - start
        print(
            f"sequential read of 1 GiB: mount {1024 / read_mount:.0f} MiB/s, download-batch "
            f"{1024 / read_copy:.0f} MiB/s: ratio {read_copy / read_mount:.2f} (goal >= 0.7)"
        )
        print(
            f"256 MiB checkpoint into storage: mount {256 / write_mount:.0f} MiB/s, upload-batch "
            f"{256 / write_copy:.0f} MiB/s: ratio {write_copy / write_mount:.2f} (goal >= 0.7)"
        )
    finally:
        proxy.close()
        stop_azurite(azurite)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
