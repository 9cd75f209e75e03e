"""Real mounts of Blob containers and File shares on a node, as Batch AI mounted them.

The method per volume, best first (the first the node can use wins; execution.log says which and why):

- Blob container (azureBlobFileSystems): blobfuse2 where it is installed (Azure's own images),
  else `rclone mount` with rclone's azureblob backend, pointed at the account's blob endpoint.
- File share (azureFileShares): the kernel's cifs client (SMB 3, the key in a credentials file of
  mode 0600), else rclone's smb backend (user-space SMB 3 to the share's SMB endpoint), else
  rclone's azurefiles backend (the REST API over 443, for networks that block port 445).
- Neither, or `--volumes copy`: a staged copy (agent/volumes.py).
- File server (fileServers): one batchai serves from a folder on this machine is bind-mounted where
  the node can (root), else linked; an NFS export (HOST:/path) is mounted with the kernel's NFS
  client (`mount -t nfs`), or the job fails naming what the node lacks. Neither is ever staged:
  there is no copy of a file server to fall back to.

The SMB endpoint is the file endpoint's host on port 445, or BATCHAI_SMB_ENDPOINT (host:port) on the
node. No key or SAS ever appears on a command line: rclone gets its settings through environment
variables, cifs and blobfuse2 through files of mode 0600.

Every mount leaves a record (mount.json) in a state folder of its own: the method, the rclone
daemon and its control socket, and the agent that owns it. An agent that starts on a node first
unmounts the job mounts whose owner is gone (a crashed or killed agent); cluster-level mounts
belong to the node and stay until the cluster is deleted or the node leaves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from batchai_cli import private
from batchai_cli.agent import rclone
from batchai_cli.storage.paths import FileServerSource, Volume, volume_credentials

MODES = ("auto", "mount", "copy")
FUSE_METHODS = ("blobfuse2", "rclone azureblob", "rclone smb", "rclone azurefiles")
STATE_FOLDER = ".mount-state"
DRAIN_TIMEOUT = float(os.environ.get("BATCHAI_MOUNT_DRAIN_TIMEOUT", "600"))


class MountError(Exception):
    """A volume could not be mounted; the message says why, with no secret in it."""


@dataclass(frozen=True)
class Abilities:
    """What this node can mount with; each `*_problem` is "" when the method can be used."""

    fuse_problem: str
    rclone: str | None
    rclone_problem: str
    blobfuse2: str | None
    cifs_problem: str
    nfs_problem: str = ""
    bind_problem: str = ""


def node_abilities(env: Mapping[str, str] | None = None) -> Abilities:
    env = os.environ if env is None else env
    search = env.get("PATH", os.defpath)
    binary, rclone_problem = rclone.find(search)
    return Abilities(
        fuse_problem=_fuse_problem(env.get("BATCHAI_FUSE_DEVICE", "/dev/fuse"), search),
        rclone=binary,
        rclone_problem=rclone_problem,
        blobfuse2=shutil.which("blobfuse2", path=search),
        cifs_problem=_cifs_problem(search),
        nfs_problem=nfs_problem(search),
        bind_problem="" if os.geteuid() == 0 else "a bind mount needs root",
    )


def _fuse_problem(device: str, search: str) -> str:
    if not os.path.exists(device):
        return f"FUSE is not available on this node ({device} does not exist)"
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as exc:
        return f"FUSE is not permitted on this node ({device}: {exc.strerror})"
    if not (shutil.which("fusermount3", path=search) or shutil.which("fusermount", path=search)):
        return "FUSE is not usable on this node (no fusermount3: apt-get install fuse3)"
    return ""


def _cifs_problem(search: str) -> str:
    try:
        with open("/proc/filesystems") as handle:
            kernel = any(line.split()[-1] == "cifs" for line in handle if line.strip())
    except OSError:
        kernel = False
    if not kernel:
        return "the kernel has no cifs client (not in /proc/filesystems)"
    if not shutil.which("mount.cifs", path=search + os.pathsep + "/sbin:/usr/sbin"):
        return "mount.cifs is not installed (apt-get install cifs-utils)"
    if os.geteuid() != 0:
        return "a cifs mount needs root"
    return ""


def nfs_problem(search: str, system_dirs: str = "/sbin:/usr/sbin") -> str:
    """Why this node cannot run `mount -t nfs` ("" when it can try). Whether the kernel has an NFS
    client shows only when mounting: mount.nfs loads the module on demand, so /proc/filesystems
    lists it only after the first NFS mount; the kernel's refusal is reported then."""
    if not shutil.which("mount.nfs", path=os.pathsep.join(part for part in (search, system_dirs) if part)):
        return "mount.nfs is not installed (apt-get install nfs-common)"
    if os.geteuid() != 0:
        return "an NFS mount needs root"
    return ""


@dataclass(frozen=True)
class Choice:
    method: str  # "copy" or one of the mount methods
    reason: str  # why this one (what the better ones lacked), for execution.log


def choose(volume: Volume, abilities: Abilities, mode: str, env: Mapping[str, str] | None = None) -> Choice:
    """The best method this node has for `volume` under `mode` (auto, mount or copy).

    MountError when mode is `mount` and the node cannot mount this volume at all.
    """
    if mode == "copy":
        return Choice("copy", "--volumes copy was asked for")
    skipped = []
    if volume.kind == "azureBlob":
        if abilities.blobfuse2 and not abilities.fuse_problem:
            return Choice("blobfuse2", "")
        skipped.append("blobfuse2 not installed" if not abilities.blobfuse2 else abilities.fuse_problem)
        if abilities.rclone and not abilities.fuse_problem:
            return Choice("rclone azureblob", "; ".join(skipped))
    else:
        if not abilities.cifs_problem:
            return Choice("cifs", "")
        skipped.append(f"no kernel cifs mount: {abilities.cifs_problem}")
        if abilities.rclone and not abilities.fuse_problem:
            host, port = smb_endpoint(volume, env)
            if _reachable(host, port):
                return Choice("rclone smb", "; ".join(skipped))
            skipped.append(f"SMB port {host}:{port} is unreachable")
            return Choice("rclone azurefiles", "; ".join(skipped))
    skipped.append(abilities.fuse_problem or abilities.rclone_problem)
    reason = "; ".join(part for part in skipped if part)
    if mode == "mount":
        raise MountError(f"--volumes mount was asked for, but this node cannot mount {volume.shown_as}: {reason}.")
    return Choice("copy", reason)


def smb_endpoint(volume: Volume, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    env = os.environ if env is None else env
    configured = env.get("BATCHAI_SMB_ENDPOINT")
    if configured:
        host, _, port = configured.rpartition(":")
        return (host or port, int(port)) if host else (configured, 445)
    file_url = _credentials(volume, env).endpoint("file")
    return urlsplit(file_url).hostname or "", 445


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _credentials(volume: Volume, env: Mapping[str, str] | None):
    ref = volume.reference
    return volume_credentials(ref.get("accountName"), (ref.get("credentials") or {}).get("accountKey"), env)


def share_name(volume: Volume) -> str:
    return (volume.reference.get("azureFileUrl") or "").rstrip("/").rsplit("/", 1)[-1]


# -- mounting -------------------------------------------------------------------------------------


@dataclass
class Mount:
    """One live mount, as recorded in <state_dir>/mount.json."""

    path: str
    method: str
    state_dir: str
    level: str
    socket: str | None = None  # rclone's remote control socket
    pid: int | None = None  # rclone's daemon
    owner: int | None = None  # the agent that must unmount it (None: the node's, for cluster volumes)
    owner_start: str | None = None
    url: str = ""

    def save(self) -> None:
        private.write_whole(os.path.join(self.state_dir, "mount.json"), json.dumps(asdict(self)))

    @classmethod
    def load(cls, state_dir: str) -> Mount | None:
        try:
            with open(os.path.join(state_dir, "mount.json")) as handle:
                return cls(**json.load(handle))
        except (OSError, ValueError, TypeError):
            return None


def state_dir_for(target: str, mount_root: str) -> str:
    """The mount's own folder, beside the mount root (never inside what the job sees)."""
    import hashlib

    key = hashlib.sha1(os.path.abspath(target).encode()).hexdigest()[:16]
    return os.path.join(os.path.dirname(os.path.abspath(mount_root)), STATE_FOLDER, key)


def mount(
    volume: Volume,
    target: str,
    mount_root: str,
    choice: Choice,
    url: str,
    note: Callable[[str], None],
    *,
    abilities: Abilities,
    env: Mapping[str, str] | None = None,
) -> Mount:
    """Mount `volume` at `target` with `choice.method`. MountError (with rclone's own reason) when it fails."""
    state_dir = state_dir_for(target, mount_root)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    os.makedirs(target, exist_ok=True)
    credentials = _credentials(volume, env)
    secrets = (credentials.account_key, credentials.sas_token)
    record = Mount(target, choice.method, state_dir, volume.level, url=url)
    if volume.level == "job":
        record.owner = os.getpid()
        record.owner_start = _start_time(os.getpid())
    if choice.method.startswith("rclone "):
        key = os.path.basename(state_dir)
        record.socket = rclone.socket_path_for(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record.socket)
        backend, remote_path, settings, extra = _rclone_plan(volume, credentials, choice.method, abilities, env, note)
        argv = rclone.mount_command(abilities.rclone, remote_path, target, state_dir, record.socket, extra)
        run_env = {**rclone.base_env(state_dir), **rclone.settings_env(backend, settings)}
    elif choice.method == "cifs":
        argv = cifs_command(volume, target, state_dir, credentials, env)
        run_env = dict(os.environ)
    elif choice.method == "blobfuse2":
        argv = blobfuse2_command(volume, target, state_dir, credentials, abilities.blobfuse2)
        run_env = dict(os.environ)
    else:  # pragma: no cover - choose() returns no other
        raise MountError(f"Unknown mount method {choice.method}")
    record.save()  # before the mount appears, so no other agent takes it for a stale one
    output_path = os.path.join(state_dir, "mount.out")
    try:
        # Into a file, not a pipe: a daemon that keeps the pipe open would hold run() forever.
        with open(output_path, "w") as output:
            done = subprocess.run(argv, env=run_env, stdin=subprocess.DEVNULL, stdout=output, stderr=output, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountError(f"{choice.method} did not start: {exc}") from None
    if done.returncode != 0 or not is_mounted(target):
        from batchai_cli.storage.credentials import redact

        with open(output_path, errors="replace") as handle:
            printed = handle.read().strip()
        why = rclone.last_error(state_dir, *secrets) or redact(printed[-500:], *secrets)
        _force_unmount(target)
        raise MountError(f"{choice.method} could not mount {url}: {why or f'exit code {done.returncode}'}")
    if record.socket:
        record.pid = rclone.daemon_pid(record.socket)
    record.save()
    return record


def mount_unmanaged(volume: Volume, target: str, mount_root: str, *, env: Mapping[str, str] | None = None) -> Mount:
    """Run an unmanagedFileSystems entry's mountCommand with the mount path appended, as Batch AI
    did. MountError with the command's last line of output when it fails or mounts nothing."""
    state_dir = state_dir_for(target, mount_root)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.makedirs(target, exist_ok=True)
    record = Mount(target, "unmanaged", state_dir, volume.level, url=volume.shown_as)
    if volume.level == "job":
        record.owner, record.owner_start = os.getpid(), _start_time(os.getpid())
    record.save()
    command = f"{volume.reference['mountCommand']} {shlex.quote(target)}"
    try:
        done = subprocess.run(
            ["bash", "-c", command],
            env=dict(os.environ if env is None else env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise MountError(f"The mountCommand of {volume.shown_as} did not finish in 120 s: {command}") from None
    if done.returncode != 0 or not is_mounted(target):
        last = ((done.stderr or done.stdout).strip().splitlines() or [""])[-1]
        shutil.rmtree(state_dir, ignore_errors=True)
        what = f"exited with code {done.returncode}" if done.returncode else f"mounted nothing at {target}"
        raise MountError(f"The mountCommand of {volume.shown_as} {what}: {last or command}")
    return record


def mount_file_server(
    volume: Volume, source: FileServerSource, target: str, mount_root: str, *, abilities: Abilities
) -> tuple[Mount | None, str]:
    """Put a file server at `target`: a bind mount of the folder batchai serves (or a symlink where
    the node cannot bind-mount: no Mount, and why), or the kernel's NFS mount of an export.
    MountError naming what the node lacks (mount.nfs, root, the kernel's NFS client) or what mount said."""
    if source.folder:
        _check_served_folder(source)
        if abilities.bind_problem:
            _link(source.folder, target)
            return None, abilities.bind_problem
        argv, method, url = ["mount", "--bind", source.folder, target], "bind", source.folder
    else:
        if abilities.nfs_problem:
            raise MountError(
                f"file server {source.name} ({source.nfs_export}) needs the kernel's NFS client, and "
                f"{abilities.nfs_problem}."
            )
        argv = nfs_command(source.nfs_export, target, volume.reference.get("mountOptions"), source.nfs_version)
        method, url = "nfs", source.nfs_export
    record = Mount(target, method, state_dir_for(target, mount_root), volume.level, url=url)
    said = _kernel_mount(argv, record)
    if said is None:
        return record, ""
    if method == "bind":  # not permitted here (e.g. a container without CAP_SYS_ADMIN): a link does
        _link(source.folder, target)
        return None, f"the bind mount was refused: {said}"
    hint = ""
    if "unknown filesystem type" in said:
        hint = " (this kernel has no NFS client: load it with 'modprobe nfs', or run the job where one is)"
    raise MountError(f"mount -t nfs could not mount {url}: {said}{hint}")


def _check_served_folder(source: FileServerSource) -> None:
    """MountError when the served folder (or its sourceDirectory) is not on this node."""
    if os.path.isdir(source.folder):
        return
    if os.path.isdir(os.path.dirname(source.folder)):
        why = "its sourceDirectory does not exist (create it, or correct the job's mountVolumes)."
    else:
        why = (
            "$BATCHAI_HOME is not shared with it. Serve the folder over NFS and create the file server with "
            "--nfs-export HOST:/path."
        )
    raise MountError(f"The folder {source.folder} of file server {source.name} is not on this node: {why}")


def _kernel_mount(argv: list[str], record: Mount) -> str | None:
    """Run a mount(8) command for `record` (its record saved first, so no other agent takes the
    mount for a stale one). None when the mount is there, else what mount said."""
    os.makedirs(record.state_dir, mode=0o700, exist_ok=True)
    if record.level == "job":
        record.owner, record.owner_start = os.getpid(), _start_time(os.getpid())
    if os.path.islink(record.path):
        os.unlink(record.path)
    os.makedirs(record.path, exist_ok=True)
    record.save()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(record.state_dir, ignore_errors=True)
        return f"{' '.join(argv[:3])} did not finish: {exc}"
    if done.returncode == 0 and is_mounted(record.path):
        return None
    shutil.rmtree(record.state_dir, ignore_errors=True)
    return " ".join((done.stderr or done.stdout).split()) or f"exit code {done.returncode}"


def nfs_command(export: str, target: str, mount_options: str | None, version: str | None) -> list[str]:
    """The kernel NFS mount of `export` (HOST:/path) at `target`. mountOptions are passed on as
    Batch AI passed them (az's --nfs gives "rw"); vers= comes from the file server's --nfs-version
    unless the options name one, and without either mount.nfs negotiates the highest version."""
    options = [part.strip() for part in (mount_options or "rw").replace(" ", ",").split(",") if part.strip()]
    options = [part[2:] if part.startswith("-o") else part for part in options if part != "-o"]
    if version and not any(part.split("=")[0] in ("vers", "nfsvers") for part in options):
        options.insert(0, f"vers={version}")
    return ["mount", "-t", "nfs", "-o", ",".join(options), export, target]


def _link(folder: str, target: str) -> None:
    if os.path.islink(target) or os.path.isfile(target):
        os.unlink(target)
    elif os.path.isdir(target) and not os.listdir(target):
        os.rmdir(target)
    if not os.path.exists(target):
        os.symlink(folder, target)


def _rclone_plan(volume, credentials, method, abilities, env, note):
    """(backend, remote path, settings, extra flags) for an rclone mount of `volume`."""
    ref = volume.reference
    if method == "rclone azureblob":
        settings = {"account": credentials.account_name or "", "endpoint": credentials.endpoint("blob")}
        if credentials.account_key:
            settings["key"] = credentials.account_key
        elif credentials.sas_token:
            settings = {"sas_url": f"{credentials.endpoint('blob')}/{ref['containerName']}?{credentials.sas_token}"}
        extra, dropped = translate_blobfuse_options(ref.get("mountOptions") or "")
        for option in dropped:
            note(f"Warning: the mount option {option} of {volume.shown_as} has no rclone equivalent; it is ignored.")
        return "azureblob", ref["containerName"], settings, extra
    modes = ["--file-perms", ref.get("fileMode") or "0777", "--dir-perms", ref.get("directoryMode") or "0777"]
    modes += ["--umask", "0"]
    if method == "rclone smb":
        host, port = smb_endpoint(volume, env)
        settings = {
            "host": host,
            "port": str(port),
            "user": credentials.account_name or "",
            "pass": rclone.obscure(abilities.rclone, credentials.account_key or ""),
        }
        return "smb", share_name(volume), settings, modes
    settings = {
        "account": credentials.account_name or "",
        "endpoint": credentials.endpoint("file"),
        "share_name": share_name(volume),
    }
    if credentials.account_key:
        settings["key"] = credentials.account_key
    elif credentials.sas_token:
        settings["sas_url"] = f"{credentials.endpoint('file')}/{share_name(volume)}?{credentials.sas_token}"
    return "azurefiles", "", settings, modes


# blobfuse (v1 and v2) option -> rclone flag; a value of None takes the option's own value.
_BLOBFUSE_TO_RCLONE = {
    "attr_timeout": ("--attr-timeout", "s"),
    "allow_other": ("--allow-other", None),
    "ro": ("--read-only", None),
    "read-only": ("--read-only", None),
    "uid": ("--uid", ""),
    "gid": ("--gid", ""),
    "umask": ("--umask", ""),
    "file-cache-timeout-in-seconds": ("--vfs-cache-max-age", "s"),
    "file-cache-timeout": ("--vfs-cache-max-age", "s"),
    "cache-size-mb": ("--vfs-cache-max-size", "M"),
    "max-size-mb": ("--vfs-cache-max-size", "M"),
}


def translate_blobfuse_options(options: str) -> tuple[list[str], list[str]]:
    """blobfuse mountOptions ("-o attr_timeout=240 --file-cache-timeout-in-seconds=120") as rclone
    flags, and the options that have no rclone equivalent (dropped, with a warning)."""
    words = shlex.split(options)
    items = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-o" and index + 1 < len(words):
            items += [part for part in words[index + 1].split(",") if part]
            index += 2
            continue
        if word.startswith("-o") and len(word) > 2:
            items += [part for part in word[2:].split(",") if part]
        elif word.startswith("--"):
            items.append(word[2:])
        elif word:
            items.append(word)
        index += 1
    flags, dropped = [], []
    for item in items:
        name, sep, value = item.partition("=")
        mapped = _BLOBFUSE_TO_RCLONE.get(name)
        if mapped is None or (mapped[1] is not None and not sep) or (mapped[1] is None and sep and value != "true"):
            dropped.append(item)
            continue
        flag, unit = mapped
        flags += [flag] if unit is None else [flag, f"{value}{unit}"]
    return flags, dropped


def cifs_command(volume: Volume, target: str, state_dir: str, credentials, env=None) -> list[str]:
    """The kernel cifs mount as Batch AI ran it; the account and key go in a credentials file (0600)."""
    ref = volume.reference
    host, port = smb_endpoint(volume, env)
    credentials_file = os.path.join(state_dir, "cifs.credentials")
    fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"username={credentials.account_name}\npassword={credentials.account_key or ''}\n")
    options = [
        "vers=3.0",
        f"credentials={credentials_file}",
        f"dir_mode={ref.get('directoryMode') or '0777'}",
        f"file_mode={ref.get('fileMode') or '0777'}",
        "serverino",
    ]
    if port != 445:
        options.append(f"port={port}")
    return ["mount", "-t", "cifs", f"//{host}/{share_name(volume)}", target, "-o", ",".join(options)]


def blobfuse2_command(volume: Volume, target: str, state_dir: str, credentials, binary: str | None) -> list[str]:
    """blobfuse2's mount with a config file (0600) that holds the account, key or SAS and endpoint."""
    import yaml

    ref = volume.reference
    storage = {
        "type": "block",
        "account-name": credentials.account_name,
        "container": ref["containerName"],
        "endpoint": credentials.endpoint("blob"),
    }
    if credentials.account_key:
        storage.update({"mode": "key", "account-key": credentials.account_key})
    elif credentials.sas_token:
        storage.update({"mode": "sas", "sas": "?" + credentials.sas_token})
    config = {
        "components": ["libfuse", "file_cache", "attr_cache", "azstorage"],
        "libfuse": {"attribute-expiration-sec": 2, "entry-expiration-sec": 2},
        "file_cache": {"path": os.path.join(state_dir, "cache"), "timeout-sec": 120},
        "attr_cache": {"timeout-sec": 2},
        "azstorage": storage,
    }
    path = os.path.join(state_dir, "blobfuse2.yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    return [
        binary or "blobfuse2",
        "mount",
        target,
        f"--config-file={path}",
        *shlex.split(ref.get("mountOptions") or ""),
    ]


# -- unmounting -----------------------------------------------------------------------------------


def unmount(record: Mount, note: Callable[[str], None]) -> list[str]:
    """Finish the mount's uploads, unmount it, and wait for its daemon. Returns the problems."""
    problems = []
    if record.socket and os.path.exists(record.socket):
        done, errored = rclone.drain(record.socket, DRAIN_TIMEOUT)
        if not done:
            problems.append(
                f"{record.url}: rclone had not finished uploading to storage after {DRAIN_TIMEOUT:.0f} s "
                f"(see {os.path.join(record.state_dir, 'rclone.log')})"
            )
        if errored:
            problems.append(f"{record.url}: {errored} file(s) could not be uploaded by rclone")
    if is_mounted(record.path):
        _unmount_path(record.path, kernel=record.method in ("cifs", "nfs", "bind", "unmanaged"))
    if record.pid:
        deadline = time.monotonic() + 10
        while _alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if is_mounted(record.path):
        problems.append(f"{record.path} is still mounted")
    else:
        note(f"Unmounted {record.url} from {record.path}.")
        shutil.rmtree(record.state_dir, ignore_errors=True)
        if record.socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(record.socket)
    return problems


def _unmount_path(path: str, *, kernel: bool) -> None:
    commands = [["umount", path], ["umount", "-l", path]] if kernel else []
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
    commands += [[fusermount, "-u", path], [fusermount, "-uz", path], ["umount", "-l", path]]
    for argv in commands:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(argv, capture_output=True, timeout=30)
        if not is_mounted(path):
            return


def _force_unmount(path: str) -> None:
    if is_mounted(path):
        _unmount_path(path, kernel=False)


def mount_points(under: str) -> list[str]:
    """Mount points at or below `under`, deepest first, as /proc/mounts lists them."""
    under = os.path.abspath(under)
    found = []
    try:
        with open("/proc/mounts") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 2:
                    continue
                point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                if point == under or point.startswith(under + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(set(found), key=len, reverse=True)


def is_mounted(path: str) -> bool:
    return os.path.abspath(path) in mount_points(path)


def find_record(point: str, node_root: str) -> Mount | None:
    """The record of the mount at `point`: its state folder is beside one of the mount roots above it."""
    import hashlib

    key = hashlib.sha1(os.path.abspath(point).encode()).hexdigest()[:16]
    folder = os.path.dirname(os.path.abspath(point))
    node_root = os.path.abspath(node_root)
    while folder.startswith(node_root):
        record = Mount.load(os.path.join(os.path.dirname(folder), STATE_FOLDER, key))
        if record is not None:
            return record
        folder = os.path.dirname(folder)
    return None


def unmount_stale(node_root: str, note: Callable[[str], None]) -> None:
    """Unmount the job mounts on this node whose agent is gone (crashed, killed), and cluster
    mounts whose daemon died (the mount point answers 'transport endpoint is not connected')."""
    for point in mount_points(node_root):
        record = find_record(point, node_root)
        if record is not None and record.owner is not None:
            if record.owner == os.getpid() or _start_time(record.owner) == record.owner_start:
                continue  # its agent still runs (another job on this node)
            why = f"its agent (process {record.owner}) is gone"
        elif record is not None:
            if _responds(point):
                continue  # a cluster volume: it stays for the node's life
            why = "its rclone process is gone"
        else:
            why = "no agent recorded it"
        note(f"Unmounting a stale mount left on this node: {point} ({why}).")
        if record is None:
            _unmount_path(point, kernel=False)
        else:
            for problem in unmount(record, note):
                note(f"Warning: {problem}")


def unmount_all(node_root: str, note: Callable[[str], None]) -> list[str]:
    """Unmount everything this node has mounted (cluster delete, the node leaving the cluster)."""
    problems = []
    for point in mount_points(node_root):
        record = find_record(point, node_root)
        if record is None:
            _unmount_path(point, kernel=False)
        else:
            problems += unmount(record, note)
    return problems


def live_record(target: str, mount_root: str) -> Mount | None:
    """The record of a mount already live at `target` (a cluster volume an earlier job mounted)."""
    record = Mount.load(state_dir_for(target, mount_root))
    if record is not None and is_mounted(target) and _responds(target):
        return record
    return None


def _responds(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
