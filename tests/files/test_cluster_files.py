"""`cluster file list`: the setup task's output on a local folder and on a cluster-level blob
container, az's snake_case rows and table, and az's messages where it is not supported."""

from __future__ import annotations

import urllib.request

import pytest

CLUSTER_ARGS = ("-g", "rg", "-w", "ws", "-c", "s")


def setup_cluster(lab, output: str, *extra: str) -> str:
    """A cluster whose setup task writes to `output`; returns where its files go (prefix/suffix)."""
    cluster = lab.cluster("s", 1, "--setup-task", "echo set up", "--setup-task-output", output, *extra)
    return cluster["nodeSetup"]["setupTask"]["stdOutErrPathSuffix"]


def test_a_cluster_without_a_setup_task_has_no_files(lab):
    result = lab.batchai("cluster", "file", "list", "-g", "rg", "-w", "ws", "-c", "c")
    assert result.code == 0, result.err
    assert result.json() == []


def test_setup_output_in_a_local_folder(lab, tmp_path):
    suffix = setup_cluster(lab, str(tmp_path / "setup"))
    folder = tmp_path / "setup" / suffix
    (folder / "logs").mkdir(parents=True)
    (folder / "stdout-tvm-1.txt").write_text("set up\n")
    (folder / "logs" / "apt.log").write_text("ok\n")
    result = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS)
    assert result.code == 0, result.err
    assert result.json() == [
        {"download_url": None, "is_directory": True, "name": "logs", "size": None},
        {
            "download_url": (folder / "stdout-tvm-1.txt").as_uri(),
            "is_directory": False,
            "name": "stdout-tvm-1.txt",
            "size": 7,
        },
    ]
    table = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS, "-o", "table")
    assert table.out == (
        "Name              Is directory  Size\n"
        "----------------  ------------  ----\n"
        "logs              yes\n"
        "stdout-tvm-1.txt  no               7\n"
    )
    sub = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS, "-p", "logs")
    assert [(row["name"], row["size"]) for row in sub.json()] == [("apt.log", 3)]
    climbing = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS, "-p", "../..")
    assert climbing.code == 2 and "'..' is not allowed in --path" in climbing.err


def test_setup_output_not_on_a_mounted_volume_gets_azs_message(lab):
    setup_cluster(lab, "$AZ_BATCHAI_MOUNT_ROOT/afs/setup")
    result = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS)
    assert result.code == 1
    assert result.err == (
        "ERROR: List files is supported only for clusters with startup task configure to store its output on "
        "Azure File Share or Azure Blob Container\n"
    )


@pytest.mark.integration
def test_setup_output_on_a_cluster_level_blob_container(lab, azurite, azurite_container, monkeypatch):
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    suffix = setup_cluster(
        lab,
        "$AZ_BATCHAI_MOUNT_ROOT/bfs/setup",
        "--bfs-name",
        azurite_container,
        "--storage-account-name",
        azurite.account_name,
        "--storage-account-key",
        azurite.account_key,
    )
    store = BlobStore(azurite_container, credentials=parse_connection_string(azurite.connection_string))
    store.write(f"setup/{suffix}/stdout.txt", b"set up\n")
    store.makedirs(f"setup/{suffix}/logs")
    result = lab.batchai("cluster", "file", "list", *CLUSTER_ARGS, "--expiry", "30")
    assert result.code == 0, result.err
    rows = result.json()
    assert [(row["name"], row["is_directory"], row["size"]) for row in rows] == [
        ("logs", True, None),
        ("stdout.txt", False, 7),
    ]
    url = rows[1]["download_url"]
    assert url.startswith(f"{azurite.blob_endpoint}/{azurite_container}/setup/{suffix}/stdout.txt?")
    assert "sp=rl" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"set up\n"
