"""build_cluster_request and build_file_server_request: az's admin account, nodes, image, scale, setup task."""

from __future__ import annotations

import base64
import json
import shutil
import struct

import pytest

from batchai_cli.config import build_cluster_request, build_file_server_request
from batchai_cli.config.checks import is_valid_ssh_public_key
from batchai_cli.config.nodes import MSG_SSH_KEYS_WARNING
from batchai_cli.errors import BatchAIError, InvalidConfig

SUBNET = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"
IMAGE_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/images/my-image"
ENV = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage", "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0"}


def ssh_key(comment="me@host") -> str:
    blob = struct.pack(">I", 7) + b"ssh-rsa" + struct.pack(">I", 3) + b"\x01\x00\x01" + b"\x00" * 64
    return f"ssh-rsa {base64.b64encode(blob).decode()} {comment}"


KEY = ssh_key()


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def cluster(home, path=None, **options):
    options.setdefault("vm_size", "STANDARD_NC6")
    options.setdefault("target", 1)
    options.setdefault("password", None)
    options.setdefault("user_name", "me")
    if options["password"] is None and "ssh_key" not in options:
        options["ssh_key"] = KEY
    return build_cluster_request(path, home=home, env=ENV, **options)


def write(tmp_path, doc, name="cluster.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def test_a_cluster_from_options_only(home):
    request, warnings = cluster(home, password="pw", ssh_key=None, image="UbuntuLTS", subnet=SUBNET)
    assert warnings == []
    assert request == {
        "properties": {
            "userAccountSettings": {"adminUserName": "me", "adminUserPassword": "pw"},
            "vmSize": "STANDARD_NC6",
            "virtualMachineConfiguration": {
                "imageReference": {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"}
            },
            "scaleSettings": {"manual": {"targetNodeCount": 1, "nodeDeallocationOption": "requeue"}},
            "subnet": {"id": SUBNET},
            "vmPriority": "dedicated",
            "engine": {"type": "local"},
        }
    }


def test_the_os_user_and_the_home_ssh_key_are_the_defaults(home, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "osuser")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa.pub").write_text(KEY + "\n")
    request, _ = build_cluster_request(None, vm_size="s", target=0, home=home, env={})
    assert request["properties"]["userAccountSettings"] == {"adminUserName": "osuser", "adminUserSshPublicKey": KEY}
    # with a password, az did not reach for ~/.ssh/id_rsa.pub
    request, _ = build_cluster_request(None, vm_size="s", target=0, password="pw", home=home, env={})
    assert request["properties"]["userAccountSettings"] == {"adminUserName": "osuser", "adminUserPassword": "pw"}


def test_a_key_may_be_given_as_a_file(home):
    (home / "key.pub").write_text(KEY)
    request, _ = cluster(home, ssh_key=str(home / "key.pub"))
    assert request["properties"]["userAccountSettings"]["adminUserSshPublicKey"] == KEY
    request, _ = cluster(home, ssh_key="~/key.pub")
    assert request["properties"]["userAccountSettings"]["adminUserSshPublicKey"] == KEY


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ssh_key": "my key"}, "Incorrect ssh public key value."),
        ({"ssh_key": None, "password": None}, "Please provide admin user password or ssh key."),
        ({"vm_size": None}, "Please provide VM size"),
        ({"target": None}, "Please provide scale setting for the cluster via command line or configuration file"),
        ({"subnet": "default"}, "Ill-formed subnet resource id"),
        ({"setup_task": "echo hi"}, "--setup-task requires providing of --setup-task-output"),
        ({"vm_priority": "spot"}, "'spot' is not a valid value for '--vm-priority'."),
        ({"engine": "kubernetes"}, "'kubernetes' is not a valid engine: use local or slurm."),
        ({"target": -1}, "--target must be 0 or more, not -1"),
        ({"target": "two"}, "--target must be a whole number, not 'two'"),
    ],
)
def test_option_messages(home, options, message):
    with pytest.raises(BatchAIError) as caught:
        cluster(home, **options)
    assert type(caught.value) is BatchAIError
    assert caught.value.message == message


def test_no_user_anywhere(home, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "")
    with pytest.raises(BatchAIError) as caught:
        cluster(home, user_name=None)
    assert caught.value.message == "Please provide admin user name."


def test_options_override_the_file_and_a_bad_key_in_the_file_points_at_it(tmp_path, home):
    doc = {
        "properties": {
            "vmSize": "STANDARD_D1",
            "vmPriority": "lowpriority",
            "userAccountSettings": {"adminUserName": "fileuser", "adminUserSshPublicKey": KEY},
            "scaleSettings": {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4}},
        }
    }
    request, _ = build_cluster_request(write(tmp_path, doc), user_name="me", vm_size="STANDARD_NC6", home=home)
    properties = request["properties"]
    assert properties["userAccountSettings"] == {"adminUserName": "me", "adminUserSshPublicKey": KEY}
    assert properties["vmSize"] == "STANDARD_NC6" and properties["vmPriority"] == "lowpriority"
    assert properties["scaleSettings"] == {
        "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4, "initialNodeCount": 0}
    }
    doc["properties"]["userAccountSettings"]["adminUserSshPublicKey"] = "~/missing.pub"
    with pytest.raises(InvalidConfig) as caught:
        build_cluster_request(write(tmp_path, doc), home=home)
    (problem,) = caught.value.problems
    assert (problem.json_path, problem.message) == (
        "$.properties.userAccountSettings.adminUserSshPublicKey",
        "Incorrect ssh public key value.",
    )
    assert problem.line == 7


@pytest.mark.parametrize(
    ("image", "custom", "reference"),
    [
        ("UbuntuLTS", None, {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"}),
        (
            "ubuntudsvm",
            None,
            {"publisher": "microsoft-ads", "offer": "linux-data-science-vm-ubuntu", "sku": "linuxdsvmubuntu"},
        ),
        (
            "Canonical:UbuntuServer:18.04-LTS:latest",
            None,
            {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"},
        ),
        (
            "Canonical:UbuntuServer:18.04-LTS:",
            IMAGE_ID,
            {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "virtualMachineImageId": IMAGE_ID},
        ),
    ],
)
def test_images(home, image, custom, reference):
    request, _ = cluster(home, image=image, custom_image=custom)
    assert request["properties"]["virtualMachineConfiguration"] == {"imageReference": reference}


@pytest.mark.parametrize(
    ("image", "custom", "message"),
    [
        (None, IMAGE_ID, "You need to specify --image argument with information about the custom image"),
        ("UbuntuLTS", "my-image", "Ill-formed custom image resource id"),
        ("a:b:c", None, '--image must have format "publisher:offer:sku:version" or "publisher:offer:sku:"'),
        (":b:c:", None, "Image publisher must be provided in --image argument"),
        ("a::c:", None, "Image offer must be provided in --image argument"),
        ("a:b::", None, "Image sku must be provided in --image argument"),
        ("Windows", None, 'Unsupported image alias "Windows", supported aliases are UbuntuLTS, UbuntuDSVM'),
    ],
)
def test_image_messages(home, image, custom, message):
    with pytest.raises(BatchAIError) as caught:
        cluster(home, image=image, custom_image=custom)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("target", "low", "high", "scale"),
    [
        (2, 2, 2, {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "requeue"}}),  # az: autoScale
        (None, 3, 3, {"manual": {"targetNodeCount": 3, "nodeDeallocationOption": "requeue"}}),
        (0, None, None, {"manual": {"targetNodeCount": 0, "nodeDeallocationOption": "requeue"}}),
        (None, 1, 4, {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 4, "initialNodeCount": 0}}),
        (2, 1, 4, {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 4, "initialNodeCount": 2}}),
        ("2", "2", "2", {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "requeue"}}),
    ],
)
def test_scale_settings_compare_numbers_as_numbers(home, target, low, high, scale):
    request, _ = cluster(home, target=target, min_nodes=low, max_nodes=high)
    assert request["properties"]["scaleSettings"] == scale


@pytest.mark.parametrize(
    ("target", "low", "high", "message"),
    [
        (None, 1, None, "You need to either provide both min and max node counts or not provide any of them"),
        (None, None, 1, "You need to either provide both min and max node counts or not provide any of them"),
        (None, 3, 1, "Maximum nodes count must be greater or equal to minimum nodes count"),
        (5, 1, 3, "--target must be between --min and --max (1 to 3), not 5"),
    ],
)
def test_scale_messages(home, target, low, high, message):
    with pytest.raises(BatchAIError) as caught:
        cluster(home, target=target, min_nodes=low, max_nodes=high)
    assert caught.value.message == message


def test_setup_task_replaces_the_file_task_and_keeps_its_mounts(tmp_path, home):
    doc = {
        "properties": {
            "nodeSetup": {
                "setupTask": {"commandLine": "old", "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"},
                "mountVolumes": {
                    "unmanagedFileSystems": [
                        {"mountCommand": "mount -t glusterfs 10.0.0.4:/gv0", "relativeMountPath": "gluster"}
                    ]
                },
            }
        }
    }
    request, _ = cluster(
        home,
        write(tmp_path, doc),
        setup_task="apt install unzip -y",
        setup_task_output="$AZ_BATCHAI_MOUNT_ROOT/afs",
        afs_name="share",
        bfs_name="container",
    )
    node_setup = request["properties"]["nodeSetup"]
    assert node_setup["setupTask"] == {
        "commandLine": "apt install unzip -y",
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
    }
    assert list(node_setup["mountVolumes"]) == ["unmanagedFileSystems", "azureFileShares", "azureBlobFileSystems"]
    assert node_setup["mountVolumes"]["azureFileShares"][0]["azureFileUrl"] == (
        "https://mystorage.file.core.windows.net/share"
    )


def test_cluster_file_placeholders_are_filled(tmp_path, home):
    doc = {
        "properties": {
            "nodeSetup": {
                "mountVolumes": {
                    "azureFileShares": [
                        {
                            "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                            "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/share",
                            "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                            "relativeMountPath": "azfiles",
                        }
                    ]
                }
            }
        }
    }
    request, _ = cluster(home, write(tmp_path, doc))
    (share,) = request["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"]
    assert share == {
        "accountName": "mystorage",
        "azureFileUrl": "https://mystorage.file.core.windows.net/share",
        "credentials": {"accountKey": "c2VjcmV0"},
        "relativeMountPath": "azfiles",
        "fileMode": "0777",
        "directoryMode": "0777",
    }


def test_engine_extension(tmp_path, home):
    assert cluster(home, engine="slurm")[0]["properties"]["engine"] == {"type": "slurm"}
    doc = {"properties": {"engine": {"type": "slurm", "partition": "gpu", "account": "ml"}}}
    assert cluster(home, write(tmp_path, doc))[0]["properties"]["engine"] == doc["properties"]["engine"]
    assert cluster(home, write(tmp_path, doc), engine="slurm")[0]["properties"]["engine"]["partition"] == "gpu"
    assert cluster(home, write(tmp_path, doc), engine="local")[0]["properties"]["engine"] == {"type": "local"}


def test_generate_ssh_keys(home):
    assert shutil.which("ssh-keygen"), (
        "needs OpenSSH's ssh-keygen: apt-get install openssh-client (make test-deps does)"
    )
    request, warnings = cluster(home, generate_ssh_keys=True, ssh_key=None)
    key = request["properties"]["userAccountSettings"]["adminUserSshPublicKey"]
    assert is_valid_ssh_public_key(key)
    assert key == (home / ".ssh" / "id_rsa.pub").read_text().strip()
    assert [w.message for w in warnings] == [MSG_SSH_KEYS_WARNING]
    again, _ = cluster(home, generate_ssh_keys=True, ssh_key=None)
    assert again["properties"]["userAccountSettings"]["adminUserSshPublicKey"] == key


def test_file_server_from_a_file_and_options(tmp_path, home):
    doc = {
        "location": "eastus",
        "properties": {
            "dataDisks": {"diskSizeInGB": 10, "diskCount": 2, "storageAccountType": "Standard_LRS"},
            "sshConfiguration": {"userAccountSettings": {"adminUserName": "DemoUser", "adminUserPassword": "pw"}},
            "vmSize": "STANDARD_D1",
        },
    }
    request, warnings = build_file_server_request(
        write(tmp_path, doc, "nfs.json"), disk_count=4, caching_type="readonly", home=home
    )
    assert request == {
        "properties": {
            "dataDisks": {
                "diskSizeInGB": 10,
                "diskCount": 4,
                "storageAccountType": "Standard_LRS",
                "cachingType": "readonly",
            },
            "sshConfiguration": {"userAccountSettings": {"adminUserName": "DemoUser", "adminUserPassword": "pw"}},
            "vmSize": "STANDARD_D1",
        }
    }
    assert [w.json_path for w in warnings] == ["$.location"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"disk_size": None}, "Please provide disk size in Gb."),
        ({"disk_count": None}, "Please provide number of data disks (at least one disk is required)."),
        ({"storage_sku": None}, "Please provide storage account type (storage sku)."),
        ({"vm_size": None}, "Please provide VM size."),
        ({"subnet": "x"}, "Ill-formed subnet resource id"),
        ({"disk_count": 0}, "--disk-count must be 1 or more, not 0"),
        ({"caching_type": "all"}, "'all' is not a valid value for '--caching-type'."),
    ],
)
def test_file_server_messages_in_az_order(home, options, message):
    arguments = {
        "vm_size": "STANDARD_D1",
        "disk_count": 1,
        "disk_size": 10,
        "storage_sku": "Premium_LRS",
        "user_name": "me",
        "password": "pw",
        **options,
    }
    with pytest.raises(BatchAIError) as caught:
        build_file_server_request(None, home=home, **arguments)
    assert caught.value.message == message
