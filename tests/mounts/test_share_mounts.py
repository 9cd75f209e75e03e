"""File shares mounted over SMB 3 (rclone's smb backend to Samba), with Samba serving the very folder
the Azure Files REST emulator serves: what the job writes through SMB, `job file list` reads
through REST while the job runs. And the kernel cifs command as the node would run it."""

from __future__ import annotations

import os
import stat

import pytest

from batchai_cli.agent import mounts
from batchai_cli.storage.credentials import StorageCredentials
from batchai_cli.storage.paths import Volume
from tests.jobs.conftest import custom, until, wait_state


@pytest.mark.integration
def test_a_job_writes_through_smb_and_job_file_list_sees_it_through_rest(
    lab, azfiles_emulator, azfiles_share, samba, tmp_path, monkeypatch, no_stale_mounts
):
    connection_string, share = azfiles_share
    samba.add_share(share, azfiles_emulator.root / share)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    monkeypatch.setenv("BATCHAI_SMB_ENDPOINT", samba.endpoint)
    out = tmp_path / "out"
    job = custom("echo checkpoint-1 > $AZ_BATCHAI_OUTPUT_CKPT/model.ckpt && sleep 30", out)
    job["mountVolumes"] = {
        "azureFileShares": [
            {
                "accountName": azfiles_emulator.account_name,
                "azureFileUrl": f"https://{azfiles_emulator.account_name}.file.core.windows.net/{share}",
                "credentials": {"accountKey": azfiles_emulator.account_key},
                "relativeMountPath": "afs",
                "fileMode": "0640",
                "directoryMode": "0750",
            }
        ]
    }
    job["outputDirectories"] = [{"id": "CKPT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"}]
    assert lab.submit("smb", job).code == 0
    wait_state(lab, "smb", ("running",))

    def listed():
        result = lab.batchai("job", "file", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "smb", "-d", "CKPT")
        return result.code == 0 and "model.ckpt" in result.out

    until(listed, timeout=20, what="model.ckpt in job file list while the job runs")
    assert lab.show("smb")["executionState"] == "running"
    log = (lab.stdouterr("smb", out) / "execution.log").read_text()
    assert "with rclone smb (no kernel cifs mount: the kernel has no cifs client (not in /proc/filesystems))." in log
    (point,) = mounts.mount_points(str(lab.home))
    assert stat.S_IMODE(os.stat(point).st_mode) == 0o750
    lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "smb", "-y")
    wait_state(lab, "smb", ("failed",))
    until(lambda: not mounts.mount_points(str(lab.home)), timeout=30, what="the unmount after terminate")


def test_the_kernel_cifs_command_keeps_the_key_in_a_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHAI_SMB_ENDPOINT", "10.0.0.4:4450")
    volume = Volume(
        "job",
        "afs",
        "azureFileShare",
        {"azureFileUrl": "https://acct.file.core.windows.net/logs", "fileMode": "0644", "directoryMode": "0755"},
    )
    credentials = StorageCredentials(account_name="acct", account_key="c2VjcmV0a2V5")
    argv = mounts.cifs_command(volume, "/mnt/afs", str(tmp_path), credentials)
    secret_file = tmp_path / "cifs.credentials"
    assert argv == [
        "mount",
        "-t",
        "cifs",
        "//10.0.0.4/logs",
        "/mnt/afs",
        "-o",
        f"vers=3.0,credentials={secret_file},dir_mode=0755,file_mode=0644,serverino,port=4450",
    ]
    assert "c2VjcmV0a2V5" not in " ".join(argv)
    assert secret_file.read_text() == "username=acct\npassword=c2VjcmV0a2V5\n"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_blobfuse_options_become_rclone_flags_and_the_rest_is_named():
    flags, dropped = mounts.translate_blobfuse_options(
        "-o attr_timeout=240 -o entry_timeout=240 -o negative_timeout=120 -o allow_other "
        "--file-cache-timeout-in-seconds=120 --log-level=LOG_DEBUG"
    )
    assert flags == ["--attr-timeout", "240s", "--allow-other", "--vfs-cache-max-age", "120s"]
    assert dropped == ["entry_timeout=240", "negative_timeout=120", "log-level=LOG_DEBUG"]


def test_the_method_choice_for_each_node():
    blob = Volume("job", "data", "azureBlob", {"containerName": "c"})
    share = Volume("job", "afs", "azureFileShare", {"azureFileUrl": "https://a.file.core.windows.net/s"})
    full = mounts.Abilities("", "/usr/bin/rclone", "", "/usr/bin/blobfuse2", "")
    assert mounts.choose(blob, full, "auto") == mounts.Choice("blobfuse2", "")
    assert mounts.choose(share, full, "auto") == mounts.Choice("cifs", "")
    assert mounts.choose(blob, full, "copy") == mounts.Choice("copy", "--volumes copy was asked for")
    no_fuse = mounts.Abilities("FUSE is not available on this node (/dev/fuse does not exist)", "/r", "", None, "no")
    assert mounts.choose(blob, no_fuse, "auto") == mounts.Choice(
        "copy", "blobfuse2 not installed; FUSE is not available on this node (/dev/fuse does not exist)"
    )
    with pytest.raises(mounts.MountError, match="--volumes mount was asked for"):
        mounts.choose(share, no_fuse, "mount")
