"""Volumes in place on a node, under $AZ_BATCHAI_JOB_MOUNT_ROOT and $AZ_BATCHAI_MOUNT_ROOT.

A local folder is linked (a symlink: the job reads and writes the folder itself). An Azure File
share or blob container is a staged copy: downloaded before the job, and after it only new and
changed files are uploaded (never deletions, and never the job's own stdouterr folder, which the
log shipper writes directly). execution.log says which volume got which treatment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from batchai_cli.storage.base import Store, clean_path
from batchai_cli.storage.paths import Volume

MANIFEST = ".batchai-staged.json"


@dataclass
class Placed:
    volume: Volume
    path: str  # where the job sees it
    store: Store | None  # for staged copies
    manifest: dict | None  # relative path -> [size, mtime_ns] as downloaded


def place(volume: Volume, mount_root: str, note: Callable[[str], None], *, env=None) -> Placed:
    """Put one volume at mount_root/<relativeMountPath>. Raises what the store raises (the caller
    turns it into the job's error)."""
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
            "(a copy: changes are uploaded when the job ends)."
        )
        return Placed(volume, target, store, manifest)
    os.makedirs(target, exist_ok=True)
    note(f"{volume.shown_as} ({volume.kind}) cannot be mounted on this node; an empty folder stands in for it.")
    return Placed(volume, target, None, None)


def upload_changes(placed: Placed, skip_prefixes: list[str], note: Callable[[str], None]) -> list[str]:
    """Upload new and changed files of a staged copy. Returns the problems (empty when all went up)."""
    if placed.store is None or placed.manifest is None:
        return []
    problems = []
    uploaded = 0
    staged_dirs = {os.path.dirname(path) for path in placed.manifest}
    for folder, dirs, files in os.walk(placed.path):
        dirs.sort()
        relative_dir = clean_path(os.path.relpath(folder, placed.path).replace(os.sep, "/"))
        if (
            not files
            and not dirs
            and relative_dir
            and relative_dir not in staged_dirs
            and not any(relative_dir == p or relative_dir.startswith(p + "/") for p in skip_prefixes)
        ):
            # An empty folder the job made (e.g. an output directory it left empty) is kept too.
            try:
                placed.store.makedirs(relative_dir)
            except Exception as exc:
                problems.append(f"{placed.volume.shown_as}/{relative_dir}: {exc}")
        for name in sorted(files):
            local = os.path.join(folder, name)
            relative = clean_path(os.path.relpath(local, placed.path).replace(os.sep, "/"))
            if relative == MANIFEST or any(relative == p or relative.startswith(p + "/") for p in skip_prefixes):
                continue
            stat = _stat(local)
            if stat is None or placed.manifest.get(relative) == list(stat):
                continue
            try:
                placed.store.upload_file(relative, local)
                uploaded += 1
            except Exception as exc:
                problems.append(f"{placed.volume.shown_as}/{relative}: {exc}")
    note(f"Uploaded {uploaded} new or changed files of {placed.volume.shown_as} to {placed.store.url()}.")
    return problems


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
