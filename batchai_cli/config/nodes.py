"""Cluster and file-server requests: admin account, VM size, image, scale, setup task, as az built them
(az-batchai-behaviour.md 3.5-3.8, 3.10). Options override the file.

One difference on purpose: counts are numbers. az took --target as a string, so `-t 2 --min 2
--max 2` compared '2' with 2 and made an auto-scale cluster; here it is manual scale with 2 nodes.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from batchai_cli.config import mounts
from batchai_cli.config.checks import is_valid_ssh_public_key
from batchai_cli.config.issues import Issue
from batchai_cli.config.requests import RequestBuilder
from batchai_cli.errors import BatchAIError, ConfigProblem

IMAGE_ALIASES = {
    "ubuntults": {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS"},
    "ubuntudsvm": {"publisher": "microsoft-ads", "offer": "linux-data-science-vm-ubuntu", "sku": "linuxdsvmubuntu"},
}
ARM_ID = re.compile(r"^/subscriptions/[^/]+/resource[Gg]roups/[^/]+/providers/[^/]+/[^/]+/[^/]+(/[^/]+/[^/]+)*$")
MSG_SSH_KEYS_WARNING = (
    "Attempted to find or generate SSH key files id_rsa and id_rsa.pub under ~/.ssh to allow SSH access to the "
    "nodes. If using machines without permanent storage, back up your keys to a safe location."
)
MSG_BAD_KEY = "Incorrect ssh public key value."
MSG_NO_CREDENTIALS = "Please provide admin user password or ssh key."


def is_arm_id(value: str) -> bool:
    return bool(ARM_ID.match(value or ""))


def ensure_ssh_keys(home: Path) -> Path:
    """~/.ssh/id_rsa.pub, generated with ssh-keygen when missing (az's --generate-ssh-keys)."""
    folder = home / ".ssh"
    private, public = folder / "id_rsa", folder / "id_rsa.pub"
    if public.is_file():
        return public
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if private.exists():
            derived = subprocess.run(
                ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True, timeout=60
            )
            public.write_text(derived.stdout)
        else:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(private)],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
    except FileNotFoundError:
        raise BatchAIError(
            "Cannot generate SSH keys: ssh-keygen is not installed.",
            hint="Install OpenSSH, or give --ssh-key or --password.",
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise BatchAIError(f"Cannot generate SSH keys in {folder}: {detail.strip()}") from None
    return public


def _generated_key(generate: bool, ssh_key: str | None, home: Path) -> tuple[str | None, list[ConfigProblem]]:
    """--generate-ssh-keys: ~/.ssh/id_rsa.pub unless -k gave a key, and az's warning about it."""
    if not generate:
        return ssh_key, []
    public = ensure_ssh_keys(home)
    return ssh_key or str(public), [ConfigProblem("", MSG_SSH_KEYS_WARNING, severity="warning")]


def apply_admin_account(
    builder: RequestBuilder,
    account_path: tuple,
    *,
    user_name: str | None,
    ssh_key: str | None,
    password: str | None,
    home: Path,
) -> None:
    """az's _update_user_account_settings: options, else the file, else the OS user and ~/.ssh/id_rsa.pub."""
    holder = builder.request
    for part in account_path[:-1]:
        holder = holder.setdefault(part, {})
    account = holder.setdefault(account_path[-1], {})
    user = user_name or account.get("adminUserName") or _os_user()
    secret = password or account.get("adminUserPassword")
    key = ssh_key or account.get("adminUserSshPublicKey")
    key_from_file = not ssh_key and bool(key)
    if not key and not secret and (home / ".ssh" / "id_rsa.pub").is_file():
        key = str(home / ".ssh" / "id_rsa.pub")
    if key:
        key = _read_key(key, home)
        if not is_valid_ssh_public_key(key):
            if key_from_file:
                raise builder.invalid([Issue((*account_path, "adminUserSshPublicKey"), MSG_BAD_KEY)])
            raise BatchAIError(MSG_BAD_KEY)
    if not user:
        raise BatchAIError("Please provide admin user name.")
    if not key and not secret:
        raise BatchAIError(MSG_NO_CREDENTIALS)
    account["adminUserName"] = user
    if key:
        account["adminUserSshPublicKey"] = key
    if secret:
        account["adminUserPassword"] = secret


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no passwd entry (some containers)
        return ""


def _read_key(value: str, home: Path) -> str:
    """A key value, or a path to a .pub file (az expanded ~ and read the file)."""
    if len(value.split()) != 1:
        return value
    candidate = home / value[2:] if value.startswith("~/") else Path(value)
    try:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8", errors="replace")[:65536].strip()
    except OSError:
        pass
    return value


def image_reference(image: str | None, custom_image: str | None) -> dict | None:
    """az's _get_image_reference: an alias, or publisher:offer:sku:version, plus a custom image id."""
    if custom_image and not image:
        raise BatchAIError("You need to specify --image argument with information about the custom image")
    if custom_image and not is_arm_id(custom_image):
        raise BatchAIError("Ill-formed custom image resource id")
    if not image:
        return None
    if ":" in image:
        parts = image.split(":")
        if len(parts) != 4:
            raise BatchAIError('--image must have format "publisher:offer:sku:version" or "publisher:offer:sku:"')
        publisher, offer, sku, version = parts
        for value, what in ((publisher, "publisher"), (offer, "offer"), (sku, "sku")):
            if not value:
                raise BatchAIError(f"Image {what} must be provided in --image argument")
        reference = {"publisher": publisher, "offer": offer, "sku": sku}
        if version:
            reference["version"] = version
    else:
        alias = IMAGE_ALIASES.get(image.lower())
        if alias is None:
            raise BatchAIError(f'Unsupported image alias "{image}", supported aliases are UbuntuLTS, UbuntuDSVM')
        reference = dict(alias)
    if custom_image:
        reference["virtualMachineImageId"] = custom_image
    return reference


# The one limit on a node count, wherever one is given (cluster create/resize/auto-scale, the
# scale settings of cluster.json, a job's nodeCount): Batch AI's int32, as its schemas say.
MAX_NODE_COUNT = 2147483647


def count(value, option: str, *, minimum: int = 0) -> int | None:
    """An option's number as an int (a str of digits is accepted from callers that pass text);
    a node count of at most MAX_NODE_COUNT."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BatchAIError(f"{option} must be a whole number, not {value!r}")
    if value < minimum:
        raise BatchAIError(f"{option} must be {minimum} or more, not {value}")
    if value > MAX_NODE_COUNT:
        raise BatchAIError(f"{option} must be at most {MAX_NODE_COUNT} nodes, not {value}")
    return value


def scale_settings(target, min_nodes, max_nodes) -> dict | None:
    """az's _get_scale_settings with numbers compared as numbers; None when no option is given."""
    target = count(target, "--target")
    low, high = count(min_nodes, "--min"), count(max_nodes, "--max")
    if target is None and low is None and high is None:
        return None
    if (low is None) != (high is None):
        raise BatchAIError("You need to either provide both min and max node counts or not provide any of them")
    if low is not None and low > high:
        raise BatchAIError("Maximum nodes count must be greater or equal to minimum nodes count")
    if low is None:
        return {"manual": {"targetNodeCount": target}}
    if low == high and (target is None or target == low):
        return {"manual": {"targetNodeCount": low}}
    if target is not None and not low <= target <= high:
        raise BatchAIError(f"--target must be between --min and --max ({low} to {high}), not {target}")
    return {"autoScale": {"minimumNodeCount": low, "maximumNodeCount": high, "initialNodeCount": target or 0}}


def build_cluster_request(
    path_or_none: str | os.PathLike | None,
    *,
    user_name: str | None = None,
    ssh_key: str | None = None,
    password: str | None = None,
    generate_ssh_keys: bool = False,
    image: str | None = None,
    custom_image: str | None = None,
    vm_size: str | None = None,
    vm_priority: str | None = None,
    target: int | None = None,
    min_nodes: int | None = None,
    max_nodes: int | None = None,
    subnet: str | None = None,
    nfs_id: str | None = None,
    nfs_mount_path: str | None = "nfs",
    afs_name: str | None = None,
    afs_mount_path: str | None = "afs",
    bfs_name: str | None = None,
    bfs_mount_path: str | None = "bfs",
    storage_account_name: str | None = None,
    storage_account_key: str | None = None,
    setup_task: str | None = None,
    setup_task_output: str | None = None,
    engine: str | None = None,
    strict: bool = False,
    env: Mapping[str, str] | None = None,
    home: str | os.PathLike | None = None,
) -> tuple[dict, list[ConfigProblem]]:
    """The complete body of `cluster create [-f path] ...`, and its warnings, in az's order of steps.

    Options override the file. home is where ~/.ssh lives (default: the user's home). Where az would
    have looked a storage key up through ARM, this raises InvalidConfig with az's "configure key"
    message. engine ("local" or "slurm") sets the batchai extension properties.engine.
    """
    env = os.environ if env is None else env
    home = Path(home) if home is not None else Path.home()
    ssh_key, notices = _generated_key(generate_ssh_keys, ssh_key, home)
    if subnet and not is_arm_id(subnet):
        raise BatchAIError("Ill-formed subnet resource id")
    builder = RequestBuilder(path_or_none, "cluster", strict=strict)
    properties = builder.properties
    storage = mounts.effective_storage(storage_account_name, storage_account_key, env)
    volumes_path = ("properties", "nodeSetup", "mountVolumes")
    builder.patch_mounts(volumes_path, storage)
    apply_admin_account(
        builder,
        ("properties", "userAccountSettings"),
        user_name=user_name,
        ssh_key=ssh_key,
        password=password,
        home=home,
    )

    properties["vmSize"] = vm_size or properties.get("vmSize")
    if not properties["vmSize"]:
        raise BatchAIError("Please provide VM size")
    if vm_priority:
        if vm_priority not in ("dedicated", "lowpriority"):
            raise BatchAIError(f"'{vm_priority}' is not a valid value for '--vm-priority'.")
        properties["vmPriority"] = vm_priority
    reference = image_reference(image, custom_image)
    if reference:
        properties["virtualMachineConfiguration"] = {"imageReference": reference}
    scale = scale_settings(target, min_nodes, max_nodes)
    if scale:
        properties["scaleSettings"] = scale
    if not properties.get("scaleSettings"):
        raise BatchAIError("Please provide scale setting for the cluster via command line or configuration file")

    builder.add_option_mounts(
        volumes_path,
        storage,
        nfs_id=nfs_id,
        nfs_mount_path=nfs_mount_path,
        afs_name=afs_name,
        afs_mount_path=afs_mount_path,
        bfs_name=bfs_name,
        bfs_mount_path=bfs_mount_path,
    )
    if subnet:
        properties["subnet"] = {"id": subnet}
    if setup_task:
        if not setup_task_output:
            raise BatchAIError("--setup-task requires providing of --setup-task-output")
        node_setup = properties.setdefault("nodeSetup", {})
        node_setup["setupTask"] = {"commandLine": setup_task, "stdOutErrPathPrefix": setup_task_output}
    if engine:
        if engine not in ("local", "slurm"):
            raise BatchAIError(f"'{engine}' is not a valid engine: use local or slurm.")
        current = properties.get("engine") if isinstance(properties.get("engine"), dict) else {}
        properties["engine"] = current if current.get("type", "local") == engine else {}
        properties["engine"]["type"] = engine
    request, warnings = builder.finish()
    return request, notices + warnings


def build_file_server_request(
    path_or_none: str | os.PathLike | None,
    *,
    vm_size: str | None = None,
    disk_count: int | None = None,
    disk_size: int | None = None,
    caching_type: str | None = None,
    storage_sku: str | None = None,
    user_name: str | None = None,
    ssh_key: str | None = None,
    password: str | None = None,
    generate_ssh_keys: bool = False,
    subnet: str | None = None,
    strict: bool = False,
    home: str | os.PathLike | None = None,
) -> tuple[dict, list[ConfigProblem]]:
    """The complete body of `file-server create [-f path] ...`, and its warnings (az's create_file_server)."""
    home = Path(home) if home is not None else Path.home()
    ssh_key, notices = _generated_key(generate_ssh_keys, ssh_key, home)
    builder = RequestBuilder(path_or_none, "file-server", strict=strict)
    properties = builder.properties
    apply_admin_account(
        builder,
        ("properties", "sshConfiguration", "userAccountSettings"),
        user_name=user_name,
        ssh_key=ssh_key,
        password=password,
        home=home,
    )
    disks = properties.setdefault("dataDisks", {})
    size = count(disk_size, "--disk-size", minimum=1)
    disks["diskSizeInGB"] = size if size is not None else disks.get("diskSizeInGB")
    if not disks["diskSizeInGB"]:
        raise BatchAIError("Please provide disk size in Gb.")
    number = count(disk_count, "--disk-count", minimum=1)
    disks["diskCount"] = number if number is not None else disks.get("diskCount")
    if not disks["diskCount"]:
        raise BatchAIError("Please provide number of data disks (at least one disk is required).")
    if caching_type:
        if caching_type not in ("none", "readonly", "readwrite"):
            raise BatchAIError(f"'{caching_type}' is not a valid value for '--caching-type'.")
        disks["cachingType"] = caching_type
    if storage_sku and storage_sku not in ("Premium_LRS", "Standard_LRS"):
        raise BatchAIError(f"'{storage_sku}' is not a valid value for '--storage-sku'.")
    disks["storageAccountType"] = storage_sku or disks.get("storageAccountType")
    if not disks["storageAccountType"]:
        raise BatchAIError("Please provide storage account type (storage sku).")
    properties["vmSize"] = vm_size or properties.get("vmSize")
    if not properties["vmSize"]:
        raise BatchAIError("Please provide VM size.")
    if subnet:
        if not is_arm_id(subnet):
            raise BatchAIError("Ill-formed subnet resource id")
        properties["subnet"] = {"id": subnet}
    request, warnings = builder.finish()
    return request, notices + warnings
