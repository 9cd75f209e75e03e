"""Volumes in place on a node, under $AZ_BATCHAI_JOB_MOUNT_ROOT and $AZ_BATCHAI_MOUNT_ROOT.

A local folder is linked (a symlink: the job reads and writes the folder itself). A file server is
bind-mounted or linked (one batchai serves) or NFS-mounted (an export). An Azure File
share or blob container is mounted where the node can (agent/mounts.py picks the method), else it
is a staged copy: downloaded before the job, and after it only new and changed files are uploaded
(never deletions, and never the job's own stdouterr folder, which the log shipper writes
directly). execution.log says which volume got which treatment, and why.

The entry points take a Volume and the node's paths only, whatever the node's data comes from:
place() before the job, upload_changes() and release() after it (release() unmounts job mounts;
cluster mounts stay for the node's life), clean_node() when an agent starts.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchai_cli.agent import mounts
from batchai_cli.storage.base import Store, clean_path
from batchai_cli.storage.paths import Volume

MANIFEST = ".batchai-staged.json"


@dataclass
class Placed:
    volume: Volume
    path: str  # where the job sees it
    store: Store | None  # for staged copies
    manifest: dict | None  # relative path -> [size, mtime_ns] as downloaded
    mount: mounts.Mount | None = None  # for real mounts


def volume_mode(job_mode: str | None = None, env=None) -> str:
    """auto, mount or copy: the job's --volumes, else BATCHAI_VOLUMES on the node, else auto."""
    mode = (job_mode or (os.environ if env is None else env).get("BATCHAI_VOLUMES") or "auto").lower()
    if mode not in mounts.MODES:
        raise mounts.MountError(f"BATCHAI_VOLUMES must be auto, mount or copy, not {mode!r}.")
    return mode


def place(
    volume: Volume,
    mount_root: str,
    note: Callable[[str], None],
    *,
    env=None,
    mode: str = "auto",
    abilities: mounts.Abilities | None = None,
) -> Placed:
    """Put one volume at mount_root/<relativeMountPath>: mounted, staged or linked. Raises
    MountError or what the store raises (the caller turns it into the job's error)."""
    target = os.path.join(mount_root, volume.relative_mount_path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if volume.kind == "localFolder":
        source = os.path.abspath(os.path.expanduser(volume.reference["path"]))
        os.makedirs(source, exist_ok=True)
        if os.path.islink(target) or os.path.isfile(target):
            os.unlink(target)
        if not os.path.exists(target):
            os.symlink(source, target)
        note(f"Linked local folder {source} at {volume.shown_as}.")
        return Placed(volume, target, None, None)
    if volume.remote:
        store = volume.open_store(env)
        live = mounts.live_record(target, mount_root) if volume.level == "cluster" else None
        if live is not None:
            note(f"{store.url()} is mounted at {volume.shown_as} already ({live.method}, for the node's life).")
            return Placed(volume, target, None, None, mount=live)
        abilities = abilities or mounts.node_abilities(env)
        choice = mounts.choose(volume, abilities, mode, env)
        if choice.method != "copy":
            _check_reachable(store, volume)
            mounted = mounts.mount(volume, target, mount_root, choice, store.url(), note, abilities=abilities, env=env)
            why = f" ({choice.reason})" if choice.reason else ""
            note(f"Mounted {store.url()} at {volume.shown_as} with {choice.method}{why}.")
            return Placed(volume, target, None, None, mount=mounted)
        os.makedirs(target, exist_ok=True)
        manifest = {}
        count = total = 0
        for entry in store.walk(""):
            local = os.path.join(target, *entry.path.split("/"))
            previous = _stat(local)
            if previous is None or previous[0] != entry.size:
                store.download_file(entry.path, local)
            stat = os.stat(local)
            manifest[entry.path] = [stat.st_size, stat.st_mtime_ns]
            count += 1
            total += entry.size or 0
        with open(os.path.join(target, MANIFEST), "w") as handle:
            json.dump(manifest, handle)
        note(
            f"Staged {store.url()} at {volume.shown_as}: {count} files, {total} bytes downloaded or current "
            f"(a copy, not a mount: {choice.reason}; changes are uploaded when the job ends)."
        )
        return Placed(volume, target, store, manifest)
    if volume.kind == "unmanaged":
        live = mounts.live_record(target, mount_root) if volume.level == "cluster" else None
        if live is not None:
            note(f"{volume.shown_as} is mounted already (its mountCommand, for the node's life).")
            return Placed(volume, target, None, None, mount=live)
        mounted = mounts.mount_unmanaged(volume, target, mount_root, env=env)
        note(f"Mounted {volume.shown_as} with its mountCommand: {volume.reference['mountCommand']} {target}")
        return Placed(volume, target, None, None, mount=mounted)
    if volume.kind == "fileServer":
        return _place_file_server(volume, target, mount_root, note, abilities or mounts.node_abilities(env))
    raise mounts.MountError(f"{volume.shown_as} is a {volume.kind} volume, which batchai does not know how to mount.")


def _place_file_server(
    volume: Volume, target: str, mount_root: str, note: Callable[[str], None], abilities: mounts.Abilities
) -> Placed:
    """A file server at its mount path: bind-mounted or linked when batchai serves it from this
    machine, mounted with the kernel's NFS client when it is an NFS export. --volumes copy does
    not apply: a file server has no copy to stage."""
    from batchai_cli.storage.paths import file_server_source

    source = file_server_source(volume)
    live = mounts.live_record(target, mount_root) if volume.level == "cluster" else None
    if live is not None:
        note(f"File server {source.name} is mounted at {volume.shown_as} already ({live.method}, for the node's life).")
        return Placed(volume, target, None, None, mount=live)
    mounted, why_linked = mounts.mount_file_server(volume, source, target, mount_root, abilities=abilities)
    if mounted is None:
        note(f"Linked file server {source.name} ({source.location}) at {volume.shown_as} (a symlink: {why_linked}).")
    elif mounted.method == "bind":
        note(
            f"Mounted file server {source.name} ({source.location}) at {volume.shown_as} with a bind mount "
            "(batchai serves it from this machine)."
        )
    else:
        options = mounts.nfs_command(
            source.nfs_export, target, volume.reference.get("mountOptions"), source.nfs_version
        )
        note(
            f"Mounted file server {source.name} ({source.nfs_export}) at {volume.shown_as} with the kernel's NFS "
            f"client (-o {options[4]})."
        )
    return Placed(volume, target, None, None, mount=mounted)


def linked_folders(placed: list[Placed]) -> list[str]:
    """The folders the volumes placed as symlinks lead to (local folders, and file servers on a
    node that cannot bind-mount): a container must be given them too, or it sees dangling links."""
    return [os.path.realpath(item.path) for item in placed if os.path.islink(item.path)]


def upload_changes(placed: Placed, skip_prefixes: list[str], note: Callable[[str], None]) -> list[str]:
    """Upload new and changed files of a staged copy. Returns the problems (empty when all went up).

    Storage that does not answer (an outage, a restart) is waited for: what failed is tried again
    with backoff for up to $BATCHAI_OUTPUT_RETRY_SECONDS (default 60), as the log shipper does for
    stdout, before it is reported. Refused credentials and a missing container are not retried."""
    if placed.store is None or placed.manifest is None:
        return []
    pending = _changes(placed, skip_prefixes)
    total = len([label for label, _ in pending if not label.endswith("/")])
    failures = _try(pending)
    started = time.monotonic()
    deadline = started + _retry_seconds()
    delay = 0.5
    if _retryable(failures) and time.monotonic() < deadline:
        note(
            f"Storage did not take {len(failures)} of the new or changed files and folders of "
            f"{placed.volume.shown_as} ({_first_error(failures)}); trying again for up to {_retry_seconds():g} s."
        )
    while _retryable(failures) and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 5.0)
        failures = _try([(label, upload) for label, upload, _ in failures])
    uploaded = total - len([label for label, _, _ in failures if not label.endswith("/")])
    waited = time.monotonic() - started
    after = f" (storage answered again after {waited:.0f} s)" if waited >= 0.5 and not failures else ""
    note(f"Uploaded {uploaded} new or changed files of {placed.volume.shown_as} to {placed.store.url()}{after}.")
    return [f"{placed.volume.shown_as}/{label.rstrip('/')}: {exc}" for label, _, exc in failures]


def _changes(placed: Placed, skip_prefixes: list[str]) -> list[tuple[str, Callable[[], None]]]:
    """(what, how to upload it) for each new or changed file, and each empty folder the job made
    (a label ending in "/")."""
    store, changes = placed.store, []
    staged_dirs = {os.path.dirname(path) for path in placed.manifest}

    def skipped(relative: str) -> bool:
        return any(relative == p or relative.startswith(p + "/") for p in skip_prefixes)

    for folder, dirs, files in os.walk(placed.path):
        dirs.sort()
        relative_dir = clean_path(os.path.relpath(folder, placed.path).replace(os.sep, "/"))
        if not files and not dirs and relative_dir and relative_dir not in staged_dirs and not skipped(relative_dir):
            # An empty folder the job made (e.g. an output directory it left empty) is kept too.
            changes.append((relative_dir + "/", functools.partial(store.makedirs, relative_dir)))
        for name in sorted(files):
            local = os.path.join(folder, name)
            relative = clean_path(os.path.relpath(local, placed.path).replace(os.sep, "/"))
            if relative == MANIFEST or skipped(relative):
                continue
            stat = _stat(local)
            if stat is None or placed.manifest.get(relative) == list(stat):
                continue
            changes.append((relative, functools.partial(store.upload_file, relative, local)))
    return changes


def _try(uploads: list[tuple[str, Callable[[], None]]]) -> list[tuple[str, Callable[[], None], Exception]]:
    """Run each upload once; the ones that failed, with their error."""
    failures = []
    for label, upload in uploads:
        try:
            upload()
        except Exception as exc:
            failures.append((label, upload, exc))
    return failures


def _retryable(failures: list) -> bool:
    """Whether waiting may help: some failure is not refused credentials or a missing container
    (or a local file the job removed meanwhile)."""
    return any(not isinstance(exc, (PermissionError, FileNotFoundError)) for _, _, exc in failures)


def _first_error(failures: list) -> str:
    return str(failures[0][2]) or type(failures[0][2]).__name__


def _retry_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("BATCHAI_OUTPUT_RETRY_SECONDS", "60")))
    except ValueError:
        return 60.0


def release(placed: Placed, note: Callable[[str], None]) -> list[str]:
    """Unmount a job-level mount once its uploads are done (cluster mounts stay for the node's
    life). Returns the problems (files rclone could not upload, a mount that would not go)."""
    if placed.mount is None or placed.volume.level != "job":
        return []
    return mounts.unmount(placed.mount, note)


def clean_node(node_root: str, note: Callable[[str], None]) -> None:
    """Before an agent mounts anything: unmount what crashed agents left on this node."""
    mounts.unmount_stale(node_root, note)


def release_node(node_root: str, note: Callable[[str], None]) -> list[str]:
    """Unmount all of a node's mounts, cluster-level ones included (cluster delete, resize down)."""
    return mounts.unmount_all(node_root, note)


def release_cluster(node_ids: list[str], note: Callable[[str], None]) -> list[str]:
    """Unmount every mount of a cluster's nodes (the cluster is deleted): the given node ids and
    any node of the same cluster beyond them (left by a resize down)."""
    import glob

    from batchai_cli.agent import layout

    roots = {layout.node_root(node) for node in node_ids}
    for node in node_ids[:1]:
        prefix, _, rest = node.rpartition("_")
        stamp = rest.split("-", 1)[-1]
        roots.update(glob.glob(layout.node_root(f"{glob.escape(prefix)}_*-{glob.escape(stamp)}")))
    problems = []
    for root in sorted(roots):
        problems += release_node(root, note)
    return problems


def _check_reachable(store: Store, volume: Volume) -> None:
    """One listing before mounting, so a wrong key, a missing container or share, or an endpoint
    that does not answer is a clear error rather than a mount that fails every read."""
    what = "container" if volume.kind == "azureBlob" else "file share"
    try:
        next(iter(store.list_dir("")), None)
    except FileNotFoundError:
        raise mounts.MountError(
            f"The {what} {store.url()} does not exist (create it, or correct the job's mountVolumes)."
        ) from None
    except PermissionError as exc:
        raise mounts.MountError(f"The storage account refused access to {store.url()}: {exc}") from None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
