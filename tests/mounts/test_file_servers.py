"""File servers: `file-server create|show|list|delete` as az had them, and jobs and clusters that
mount them (`--nfs`, mountVolumes.fileServers): a folder batchai serves is bind-mounted on the node,
an NFS export is mounted with the kernel's NFS client, or the job fails saying what is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat

import pytest

from batchai_cli import ids
from batchai_cli.agent import mounts
from batchai_cli.errors import BatchAIError
from batchai_cli.services import open_session, volumes
from batchai_cli.storage.paths import FileServerSource, Volume, file_server_source
from tests.helpers import SUBSCRIPTION, normalize
from tests.jobs.conftest import custom, until, wait_state

WS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"
DISKS = ("-s", "Standard_D14", "--disk-count", "2", "--disk-size", "10", "--storage-sku", "Premium_LRS")
ADMIN = ("-u", "tester", "-p", "Passw0rd!")


def _create(batchai, name: str, *extra: str):
    return batchai("file-server", "create", "-g", "rg", "-w", "ws", "-n", name, *DISKS, *ADMIN, *extra)


@pytest.fixture
def ws(batchai):
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0


def test_create_show_list_delete_a_file_server_batchai_serves(batchai, home, ws):
    created = _create(batchai, "fs")
    assert created.code == 0, created.err
    folder = home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export"
    assert normalize(created.out) == (
        "{\n"
        '  "creationTime": "<TIME>",\n'
        '  "dataDisks": {\n'
        '    "cachingType": "none",\n'
        '    "diskCount": 2,\n'
        '    "diskSizeInGb": 10,\n'
        '    "storageAccountType": "Premium_LRS"\n'
        "  },\n"
        f'  "id": "{WS_ID}/fileServers/fs",\n'
        '  "mountSettings": {\n'
        '    "fileServerInternalIp": "127.0.0.1",\n'
        '    "fileServerPublicIp": null,\n'
        f'    "mountPoint": "{folder}"\n'
        "  },\n"
        '  "name": "fs",\n'
        '  "nfsExport": null,\n'
        '  "nfsVersion": null,\n'
        '  "provisioningState": "succeeded",\n'
        '  "provisioningStateTransitionTime": "<TIME>",\n'
        '  "resourceGroup": "rg",\n'
        '  "sshConfiguration": {\n'
        '    "publicIpsToAllow": null,\n'
        '    "userAccountSettings": {\n'
        '      "adminUserName": "tester",\n'
        '      "adminUserPassword": null,\n'
        '      "adminUserSshPublicKey": null\n'
        "    }\n"
        "  },\n"
        '  "subnet": null,\n'
        '  "type": "Microsoft.BatchAI/workspaces/fileServers",\n'
        '  "vmSize": "Standard_D14"\n'
        "}\n"
    )
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder.parent / "fileserver.json").stat().st_mode) == 0o600
    assert "Passw0rd!" not in (folder.parent / "fileserver.json").read_text()
    assert batchai("file-server", "show", "--ids", f"{WS_ID}/fileServers/fs").out == created.out
    width = len(str(folder))
    assert batchai("file-server", "list", "-g", "rg", "-w", "ws", "-o", "table").out == (
        "Name  Resource Group  Size          Disks      Public IP  Internal IP  Mount Point\n"
        f"----  --------------  ------------  ---------  ---------  -----------  {'-' * width}\n"
        f"fs    rg              Standard_D14  2 x 10 Gb             127.0.0.1    {folder}\n"
    )
    (folder / "data.txt").write_text("kept until the server is deleted")
    deleted = batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs", "-y")
    assert (deleted.code, deleted.out) == (0, ""), deleted.err
    assert not folder.parent.exists()
    assert batchai("file-server", "list", "-g", "rg", "-w", "ws").out == "[]\n"


def test_an_nfs_export_keeps_its_address_and_the_disks_from_the_file(batchai, tmp_path, ws):
    config = tmp_path / "file-server.json"
    config.write_text(
        json.dumps(
            {
                "properties": {
                    "vmSize": "Standard_D2",
                    "dataDisks": {"diskSizeInGB": 5, "diskCount": 1, "storageAccountType": "Standard_LRS"},
                    "sshConfiguration": {"userAccountSettings": {"adminUserName": "me", "adminUserPassword": "p"}},
                }
            }
        )
    )
    created = batchai(
        "file-server", "create", "-g", "rg", "-w", "ws", "-n", "ex", "-f", str(config),
        "--nfs-export", "10.0.0.4:/exports/data/", "--nfs-version", "4.1", "-o", "table",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert created.out == (
        "Name  Resource Group  Size         Disks     Public IP  Internal IP  Mount Point\n"
        "----  --------------  -----------  --------  ---------  -----------  -------------\n"
        "ex    rg              Standard_D2  1 x 5 Gb  10.0.0.4   10.0.0.4     /exports/data\n"
    )
    shown = batchai("file-server", "show", "-g", "rg", "-w", "ws", "-n", "ex").json()
    assert (shown["nfsExport"], shown["nfsVersion"]) == ("10.0.0.4:/exports/data", "4.1")
    assert shown["sshConfiguration"]["userAccountSettings"]["adminUserPassword"] is None


def test_missing_file_servers_exit_3(batchai, ws):
    for verb in (("show",), ("delete", "-y")):
        result = batchai("file-server", *verb, "-g", "rg", "-w", "ws", "-n", "nope")
        assert result.code == 3, result.err
        assert result.err == (
            'ERROR: The file-server "nope" was not found in workspace "ws" (resource group "rg"). '
            "See what exists with 'batchai file-server list -g rg -w ws'.\n"
        )
    assert batchai("file-server", "list", "-g", "rg", "-w", "nows").code == 3


def test_delete_asks_for_confirmation_and_refuses_without_a_terminal(batchai, home, ws):
    assert _create(batchai, "fs", "-o", "none").code == 0
    refused = batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs")
    assert refused.code == 1
    assert "Unable to prompt for confirmation as no tty available. Use --yes." in refused.err
    assert batchai("file-server", "show", "-g", "rg", "-w", "ws", "-n", "fs").code == 0
    assert (home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export").is_dir()


def test_az_checks_and_bad_options(batchai, ws):
    no_disks = batchai("file-server", "create", "-g", "rg", "-w", "ws", "-n", "fs", "-s", "S", *ADMIN)
    assert (no_disks.code, no_disks.err) == (1, "ERROR: Please provide disk size in Gb.\n")
    bad_export = _create(batchai, "fs", "--nfs-export", "just-a-host")
    assert bad_export.code == 2
    assert "--nfs-export must be HOST:/path" in bad_export.err and "'just-a-host'" in bad_export.err
    version_alone = _create(batchai, "fs", "--nfs-version", "3")
    assert version_alone.code == 2 and "--nfs-version applies to --nfs-export only" in version_alone.err
    assert batchai("file-server", "list", "-g", "rg", "-w", "ws").out == "[]\n"
    assert _create(batchai, "fs", "-o", "none").code == 0
    again = _create(batchai, "FS")
    assert again.code == 1
    assert again.err == (
        'ERROR: "FS" already exists in workspace "ws" (resource group "rg"). '
        "Choose another name, or delete the existing file server first.\n"
    )


# -- jobs and clusters that mount file servers ---------------------------------------------------


@pytest.mark.integration
def test_a_job_writes_through_the_file_server_mount_into_the_servers_folder(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    folder = lab.home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export"
    # stdout/stderr on the file server too, as the NFS recipes of Batch AI had them.
    job = custom(
        "echo trained > $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/model.txt && mount | grep -c /mounts/nfs",
        tmp_path,
        stdOutErrPathPrefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/logs",
    )
    assert lab.submit("nfsjob", job, "--nfs", "fs").code == 0
    done = lab.wait("nfsjob")
    assert done.code == 0, done.err
    assert (folder / "model.txt").read_text() == "trained\n"
    segment = lab.show("nfsjob")["jobOutputDirectoryPathSegment"]
    stdouterr = folder / "logs" / segment / "stdouterr"
    assert (stdouterr / "stdout.txt").read_text() == "1\n"  # a real mount, seen by the job
    log = (stdouterr / "execution.log").read_text()
    assert (
        f"Mounted file server fs (folder {folder}) at $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs with a bind mount "
        "(batchai serves it from this machine)." in log
    )
    assert "Unmounted" in log
    listed = lab.batchai("job", "file", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "nfsjob", "-o", "tsv")
    assert "stdout.txt" in listed.out, listed.err
    assert lab.show("nfsjob")["mountVolumes"]["fileServers"] == [
        {
            "fileServer": {"id": f"{WS_ID}/fileServers/fs", "resourceGroup": "rg"},
            "mountOptions": "rw",
            "relativeMountPath": "nfs",
            "sourceDirectory": None,
        }
    ]


@pytest.mark.integration
def test_a_cluster_mounts_a_source_directory_and_keeps_the_file_server_from_deletion(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    folder = lab.home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export"
    (folder / "datasets" / "mnist").mkdir(parents=True)
    (folder / "datasets" / "mnist" / "train.csv").write_text("1,2,3\n")
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(
        json.dumps(
            {
                "properties": {
                    "nodeSetup": {
                        "mountVolumes": {
                            "fileServers": [
                                {
                                    "fileServer": {"id": f"{WS_ID}/fileServers/fs"},
                                    "sourceDirectory": "datasets",
                                    "relativeMountPath": "data",
                                    "mountOptions": "rw",
                                }
                            ]
                        }
                    }
                }
            }
        )
    )
    assert lab.create_cluster("withnfs", 1, "-f", str(cluster_file)).code == 0
    job = custom("cat $AZ_BATCHAI_MOUNT_ROOT/data/mnist/train.csv", tmp_path / "out")
    assert lab.submit("reader", job, cluster="withnfs").code == 0
    assert lab.wait("reader").code == 0
    assert (lab.stdouterr("reader", tmp_path / "out") / "stdout.txt").read_text() == "1,2,3\n"
    # The portal's storage page says where the volume's files are: the server and its folder.
    reader = ids.parse(f"{WS_ID}/experiments/exp/jobs/reader")
    listed = volumes.list_job_volumes(open_session(), reader)
    served = lab.home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export" / "datasets"
    assert [(row["kind"], row["mountPath"], row["location"]) for row in listed] == [
        ("fileServer", "$AZ_BATCHAI_MOUNT_ROOT/data", f"file server fs: {served}")
    ]
    refused = lab.batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs", "-y")
    assert refused.code == 1
    assert refused.err == (
        'ERROR: The file server "fs" is mounted by cluster "withnfs" (workspace "ws"). Wait for the jobs to end '
        "(or terminate them) and delete the clusters that mount it, then delete the file server.\n"
    )
    # The cluster's mount stays for its nodes' life; deleting the cluster unmounts it.
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "withnfs", "-y").code == 0
    assert not mounts.mount_points(str(lab.home))
    assert lab.batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs", "-y").code == 0


@pytest.mark.integration
def test_a_running_job_keeps_its_file_server_until_it_ends(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    assert lab.submit("long", custom("sleep 60", tmp_path), "--nfs", "fs").code == 0
    wait_state(lab, "long", ("running",))
    refused = lab.batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs", "-y")
    assert refused.code == 1
    assert 'is mounted by job "long" (experiment "exp", running).' in refused.err
    lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "long", "-y")
    wait_state(lab, "long", ("failed",))
    assert lab.batchai("file-server", "delete", "-g", "rg", "-w", "ws", "-n", "fs", "-y").code == 0


@pytest.mark.integration
def test_slurm_nodes_reach_a_served_file_server_through_the_shared_folder(
    slurm_home, lab, slurm, tmp_path, no_stale_mounts
):
    """The nodes cannot see $BATCHAI_HOME (tests/fixtures/slurm.py); the served folder and its
    record are in the shared folder, which they do see."""
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    folder = tmp_path / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export"
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    assert lab.create_cluster("s", 2, "-f", str(cluster_file)).code == 0
    job = custom("true", tmp_path / "out", nodeCount=2)
    job["jobPreparation"] = {"commandLine": "echo $SLURMD_NODENAME > $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/$SLURMD_NODENAME"}
    # Job-level: batchai does not unmount a slurm cluster's own mounts at cluster delete (yet).
    assert lab.submit("onslurm", job, "--nfs", "fs", cluster="s").code == 0
    done = lab.wait("onslurm", timeout=90)
    assert done.code == 0, done.err
    assert sorted(path.name for path in folder.iterdir()) == ["n1", "n2"]
    assert (folder / "n2").read_text() == "n2\n"
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "s", "-y").code == 0


@pytest.mark.integration
def test_a_killed_agents_bind_mount_is_gone_after_the_next_job(lab, tmp_path, no_stale_mounts):
    from batchai_cli.agent import layout

    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    assert lab.submit("crash", custom("sleep 60", tmp_path), "--nfs", "fs").code == 0
    (point,) = until(lambda: mounts.mount_points(str(lab.home)), timeout=30, what="the bind mount")
    record = until(lambda: mounts.find_record(point, str(lab.home)), timeout=10, what="its record")
    assert record.method == "bind"
    os.kill(record.owner, signal.SIGKILL)  # the agent dies without unmounting
    layout.kill_job_processes(lab.show("crash"))
    wait_state(lab, "crash", ("failed",), timeout=60)
    assert mounts.mount_points(str(lab.home)) == [point]  # left behind
    assert lab.submit("next", custom("echo next", tmp_path)).code == 0
    assert lab.wait("next").code == 0
    assert mounts.mount_points(str(lab.home)) == []
    log = (lab.stdouterr("next", tmp_path) / "execution.log").read_text()
    assert f"Unmounting a stale mount left on this node: {point} (its agent (process {record.owner}) is gone)." in log


@pytest.mark.integration
def test_a_job_on_an_nfs_export_fails_naming_what_the_node_lacks(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "ex", "--nfs-export", "127.0.0.1:/exports/data", "-o", "none").code == 0
    assert lab.submit("onnfs", custom("ls $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs", tmp_path), "--nfs", "ex").code == 0
    assert lab.wait("onnfs").code != 0
    (error,) = lab.show("onnfs")["executionInfo"]["errors"]
    assert error["code"] == "MountFailed"
    missing = mounts.nfs_problem(os.environ.get("PATH", ""))
    if missing:  # this machine: no nfs-common
        assert error["message"] == (
            "Cannot mount $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs: file server ex (127.0.0.1:/exports/data) needs the "
            f"kernel's NFS client, and {missing}."
        )
    else:  # mount.nfs is there: the kernel or the (absent) server refuses, and mount's words are kept
        assert error["message"].startswith(
            "Cannot mount $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs: mount -t nfs could not mount 127.0.0.1:/exports/data: "
        )
    assert error["message"] in (lab.stdouterr("onnfs", tmp_path) / "execution.log").read_text()


def test_a_job_naming_an_unknown_file_server_is_refused_at_create(lab, tmp_path):
    job = custom("true", tmp_path)
    job["mountVolumes"] = {
        "fileServers": [{"fileServer": {"id": f"{WS_ID}/fileServers/gone"}, "relativeMountPath": "nfs"}]
    }
    refused = lab.submit("lost", job)
    assert refused.code == 1
    assert refused.err.startswith(f"ERROR: No file server {WS_ID}/fileServers/gone was found (no ")
    assert "Create it with 'batchai file-server create', or correct the id in mountVolumes.fileServers" in refused.err
    assert lab.batchai("job", "show", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "lost").code == 3


def test_a_node_that_cannot_bind_mount_links_the_servers_folder(batchai, home, ws, tmp_path):
    from batchai_cli.agent import volumes

    assert _create(batchai, "fs", "-o", "none").code == 0
    folder = home / "shared" / "fileservers" / "rg" / "ws" / "fs" / "export"
    (folder / "runs").mkdir()
    ref = {"fileServer": {"id": f"{WS_ID}/fileServers/FS"}, "sourceDirectory": "runs", "relativeMountPath": "nfs"}
    volume = Volume("job", "nfs", "fileServer", ref)
    not_root = mounts.Abilities("", None, "", None, "", bind_problem="a bind mount needs root")
    notes = []
    placed = volumes.place(volume, str(tmp_path / "mounts"), notes.append, abilities=not_root)
    assert os.readlink(placed.path) == str(folder / "runs")
    assert notes == [
        f"Linked file server fs (folder {folder / 'runs'}) at $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs "
        "(a symlink: a bind mount needs root)."
    ]
    # A container job is given the folder the link leads to, as it is a local folder's.
    assert volumes.linked_folders([placed]) == [str(folder / "runs")]
    assert placed.mount is None and volumes.release(placed, notes.append) == []
    ref["sourceDirectory"] = "missing"
    with pytest.raises(mounts.MountError, match="its sourceDirectory does not exist"):
        volumes.place(volume, str(tmp_path / "mounts2"), notes.append, abilities=not_root)


# -- the kernel NFS mount, as the node would run it -------------------------------------------------


def test_the_kernel_nfs_command():
    assert mounts.nfs_command("10.0.0.4:/exports/data/mnist", "/mnt/nfs", "rw", "4.1") == [
        "mount", "-t", "nfs", "-o", "vers=4.1,rw", "10.0.0.4:/exports/data/mnist", "/mnt/nfs",
    ]  # fmt: skip
    # The job's own mountOptions win; without a version mount.nfs negotiates the highest.
    assert mounts.nfs_command("h:/x", "/mnt/n", "-o ro,nfsvers=3 hard", "4.1")[4] == "ro,nfsvers=3,hard"
    assert mounts.nfs_command("h:/x", "/mnt/n", None, None)[4] == "rw"


def test_mount_nfs_missing_is_named(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    assert mounts.nfs_problem(str(empty), system_dirs="") == "mount.nfs is not installed (apt-get install nfs-common)"
    helper = empty / "mount.nfs"
    helper.write_text("#!/bin/sh\nexit 32\n")
    helper.chmod(0o755)
    assert mounts.nfs_problem(str(empty), system_dirs="") == ("" if os.geteuid() == 0 else "an NFS mount needs root")


def test_the_kernels_refusal_is_reported_with_mounts_own_words(tmp_path):
    volume = Volume("job", "nfs", "fileServer", {"fileServer": {"id": "x"}, "mountOptions": "rw"})
    source = FileServerSource(f"{WS_ID}/fileServers/ex", None, "127.0.0.1:/exports/data", "3")
    able = mounts.Abilities("", None, "", None, "", nfs_problem="")
    target = tmp_path / "mounts" / "nfs"
    with pytest.raises(mounts.MountError) as caught:
        mounts.mount_file_server(volume, source, str(target), str(tmp_path / "mounts"), abilities=able)
    message = str(caught.value)
    assert message.startswith("mount -t nfs could not mount 127.0.0.1:/exports/data: ")
    with open("/proc/filesystems") as handle:
        kernel_has_nfs = "nfs" in handle.read().split()
    if not kernel_has_nfs and not shutil.which("mount.nfs", path="/sbin:/usr/sbin:" + os.environ.get("PATH", "")):
        assert "unknown filesystem type 'nfs'" in message
        assert message.endswith(
            "(this kernel has no NFS client: load it with 'modprobe nfs', or run the job where one is)"
        )
    assert not mounts.is_mounted(str(target))
    assert not (tmp_path / ".mount-state").exists() or not os.listdir(tmp_path / ".mount-state")


def test_an_nfs_export_cannot_be_read_from_here(home, batchai, ws):
    assert _create(batchai, "ex", "--nfs-export", "10.0.0.4:/exports", "-o", "none").code == 0
    volume = Volume("job", "nfs", "fileServer", {"fileServer": {"id": f"{WS_ID}/fileServers/ex"}})
    with pytest.raises(BatchAIError, match=r"is an NFS file server \(NFS export 10.0.0.4:/exports\) mount"):
        volume.open_store()
    sub = Volume(
        "job", "nfs", "fileServer", {"fileServer": {"id": f"{WS_ID}/fileServers/ex"}, "sourceDirectory": "/a/b/"}
    )
    assert file_server_source(sub) == FileServerSource(f"{WS_ID}/fileServers/ex", None, "10.0.0.4:/exports/a/b", None)
    up = Volume(
        "job", "nfs", "fileServer", {"fileServer": {"id": f"{WS_ID}/fileServers/ex"}, "sourceDirectory": "../x"}
    )
    with pytest.raises(BatchAIError, match="leaves its file server"):
        up.open_store()


def test_a_cluster_naming_an_unknown_file_server_is_refused_at_create(lab, tmp_path):
    refused = lab.create_cluster("nofs", 1, "--nfs", f"{WS_ID}/fileServers/gone")
    assert refused.code == 1
    assert refused.err.startswith(f"ERROR: No file server {WS_ID}/fileServers/gone was found (no ")
    assert lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "nofs").code == 3


def test_workspace_delete_force_takes_the_served_folders_with_it(batchai, home, ws):
    assert _create(batchai, "fs", "-o", "none").code == 0
    folder = home / "shared" / "fileservers" / "rg" / "ws" / "fs"
    assert (folder / "export").is_dir()
    assert batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y").code == 1  # it holds fs
    assert folder.is_dir()
    assert batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y", "--force").code == 0
    assert not folder.exists()
