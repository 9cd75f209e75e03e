"""Disk-backed storage: share = folder under the root, directory = folder, file = file.

Properties that a file system cannot hold (ETags, SMB times, content headers, metadata, file ids,
written ranges) live in a SQLite sidecar next to the shares. Entries found on disk without a sidecar
row (e.g. seeded by a test) get default properties on first sight. Azure Files names are
case-insensitive and case-preserving, so lookups fall back to a case-insensitive match.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StorageError
from .util import etag_for, is_valid_share_name, now_ticks

DB_NAME = ".azfiles-emulator.sqlite3"
ROOT_ID = "0"


def _kind_of(path: Path) -> str | None:
    """'dir', 'file' or None. Symlinks and special files count as absent, so nothing leads outside."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return None


@dataclass
class Resolved:
    """Where a request path landed: kind is None when the item itself is missing."""

    share: str
    kind: str | None
    parent_exists: bool
    names: list[str] = field(default_factory=list)  # names as stored on disk (for the found part)
    path: Path | None = None

    @property
    def key(self) -> str:
        return "/".join(self.names).lower()

    @property
    def rel(self) -> str:
        return "/".join(self.names)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # One lock for the sidecar and the folder tree: requests are served by many threads.
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(self.root / DB_NAME), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS shares (name TEXT PRIMARY KEY, data TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nodes (share TEXT NOT NULL, key TEXT NOT NULL, parent TEXT NOT NULL,"
            " data TEXT NOT NULL, PRIMARY KEY (share, key))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS nodes_parent ON nodes (share, parent)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS permissions (share TEXT NOT NULL, key TEXT NOT NULL,"
            " sddl TEXT NOT NULL, PRIMARY KEY (share, key))"
        )
        self._last_tick = 0
        # folder path -> {lowercased name: name on disk}; dropped on every change we make.
        self._dir_index: dict[str, tuple[int, dict[str, str]]] = {}

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def tick(self) -> int:
        """A strictly increasing timestamp, so that every change gets a distinct ETag."""
        with self.lock:
            self._last_tick = max(now_ticks(), self._last_tick + 1)
            return self._last_tick

    # ---- shares -------------------------------------------------------------------------------

    def share_dir(self, name: str) -> Path:
        return self.root / name

    def share_exists(self, name: str) -> bool:
        return is_valid_share_name(name) and _kind_of(self.share_dir(name)) == "dir"

    def list_shares(self) -> list[str]:
        names = []
        with os.scandir(self.root) as it:
            for entry in it:
                if is_valid_share_name(entry.name) and entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
        return sorted(names)

    def get_share(self, name: str) -> dict:
        row = self._db.execute("SELECT data FROM shares WHERE name = ?", (name,)).fetchone()
        if row:
            return json.loads(row[0])
        ticks = int(os.stat(self.share_dir(name)).st_mtime_ns // 100)
        data = self.new_share_props(ticks, quota=5120, metadata=[], access_tier="TransactionOptimized")
        self.put_share(name, data)
        return data

    def new_share_props(self, ticks: int, *, quota: int, metadata: list, access_tier: str) -> dict:
        return {
            "etag": etag_for(ticks),
            "last_modified": ticks,
            "quota": quota,
            "metadata": metadata,
            "access_tier": access_tier,
            "access_tier_change_time": ticks,
            "acl": [],
        }

    def put_share(self, name: str, data: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO shares (name, data) VALUES (?, ?)", (name, json.dumps(data)))

    def create_share(self, name: str, data: dict) -> None:
        try:
            self.share_dir(name).mkdir()
        except FileExistsError:
            raise StorageError("ShareAlreadyExists") from None
        self._db.execute("DELETE FROM nodes WHERE share = ?", (name,))
        self._db.execute("DELETE FROM permissions WHERE share = ?", (name,))
        self.put_share(name, data)

    def delete_share(self, name: str) -> None:
        shutil.rmtree(self.share_dir(name))
        self._dir_index.clear()
        for table in ("nodes", "permissions"):
            self._db.execute(f"DELETE FROM {table} WHERE share = ?", (name,))
        self._db.execute("DELETE FROM shares WHERE name = ?", (name,))

    def share_usage(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.share_dir(name)):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_size
        return total

    # ---- permissions (SDDL strings referenced by x-ms-file-permission-key) ----------------------

    def put_permission(self, share: str, key: str, sddl: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO permissions (share, key, sddl) VALUES (?, ?, ?)", (share, key, sddl))

    def get_permission(self, share: str, key: str) -> str | None:
        row = self._db.execute("SELECT sddl FROM permissions WHERE share = ? AND key = ?", (share, key)).fetchone()
        return row[0] if row else None

    # ---- path resolution ------------------------------------------------------------------------

    def _child_name(self, folder: Path, name: str) -> str | None:
        if _kind_of(folder / name) is not None:
            return name
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return None
        cache_key = str(folder)
        cached = self._dir_index.get(cache_key)
        if cached is None or cached[0] != mtime:
            index = {}
            with os.scandir(folder) as it:
                for entry in it:
                    index.setdefault(entry.name.lower(), entry.name)
            cached = (mtime, index)
            self._dir_index[cache_key] = cached
        found = cached[1].get(name.lower())
        if found is not None and _kind_of(folder / found) is not None:
            return found
        return None

    def forget_listing(self, folder: Path) -> None:
        self._dir_index.pop(str(folder), None)

    def resolve(self, share: str, segments: list[str]) -> Resolved:
        if not self.share_exists(share):
            raise StorageError("ShareNotFound")
        folder = self.share_dir(share)
        names: list[str] = []
        for i, segment in enumerate(segments):
            name = self._child_name(folder, segment)
            last = i == len(segments) - 1
            if name is None:
                return Resolved(share, None, parent_exists=last, names=names, path=folder)
            kind = _kind_of(folder / name)
            if kind == "file" and not last:
                return Resolved(share, None, parent_exists=False, names=names, path=folder)
            names.append(name)
            folder = folder / name
        kind = "dir" if not segments else _kind_of(folder)
        return Resolved(share, kind, parent_exists=True, names=names, path=folder)

    # ---- node properties ----------------------------------------------------------------------

    def get_node(self, share: str, names: list[str], kind: str) -> dict:
        key = "/".join(names).lower()
        row = self._db.execute("SELECT data FROM nodes WHERE share = ? AND key = ?", (share, key)).fetchone()
        if row:
            data = json.loads(row[0])
            if data.get("kind") == kind:
                return data
        return self._default_node(share, names, kind)

    def _default_node(self, share: str, names: list[str], kind: str) -> dict:
        path = self.share_dir(share).joinpath(*names)
        st = os.lstat(path)
        ticks = int(st.st_mtime_ns // 100)
        data = self.new_node(kind, ticks, file_id=ROOT_ID if not names else None)
        if kind == "file" and st.st_size:
            data["ranges"] = [[0, st.st_size - 1]]
        self.put_node(share, names, data)
        return data

    def new_node(self, kind: str, ticks: int, file_id: str | None = None) -> dict:
        return {
            "kind": kind,
            # Real ids are 64-bit numbers with the top bit set, e.g. 13835128424026341376.
            "file_id": file_id or str(random.getrandbits(63) | (1 << 63)),
            "etag": etag_for(ticks),
            "last_modified": ticks,
            "creation_time": ticks,
            "last_write_time": ticks,
            "change_time": ticks,
            "attributes": "Directory" if kind == "dir" else "Archive",
            "permission_key": None,
            "metadata": [],
            "content_type": "application/octet-stream" if kind == "file" else None,
            "content_encoding": None,
            "content_language": None,
            "cache_control": None,
            "content_disposition": None,
            "content_md5": None,
            "ranges": [],
            "lease": None,
        }

    def put_node(self, share: str, names: list[str], data: dict) -> None:
        key = "/".join(names).lower()
        parent = "/".join(names[:-1]).lower()
        self._db.execute(
            "INSERT OR REPLACE INTO nodes (share, key, parent, data) VALUES (?, ?, ?, ?)",
            (share, key, parent, json.dumps(data)),
        )

    def delete_node(self, share: str, names: list[str]) -> None:
        self._db.execute("DELETE FROM nodes WHERE share = ? AND key = ?", (share, "/".join(names).lower()))

    def delete_subtree(self, share: str, names: list[str]) -> None:
        key = "/".join(names).lower()
        self._db.execute(
            "DELETE FROM nodes WHERE share = ? AND (key = ? OR substr(key, 1, ?) = ?)",
            (share, key, len(key) + 1, key + "/"),
        )

    def move_subtree(self, share: str, old: list[str], new: list[str]) -> None:
        old_key, new_key = "/".join(old).lower(), "/".join(new).lower()
        rows = self._db.execute(
            "SELECT key, data FROM nodes WHERE share = ? AND (key = ? OR substr(key, 1, ?) = ?)",
            (share, old_key, len(old_key) + 1, old_key + "/"),
        ).fetchall()
        self.delete_subtree(share, old)
        for key, data in rows:
            moved = new_key + key[len(old_key) :]
            parent = moved.rsplit("/", 1)[0] if "/" in moved else ""
            self._db.execute(
                "INSERT OR REPLACE INTO nodes (share, key, parent, data) VALUES (?, ?, ?, ?)",
                (share, moved, parent, data),
            )

    def entries(self, share: str, names: list[str]) -> list[tuple[str, str, int]]:
        """(name, kind, size) of every file and folder directly inside a directory."""
        out = []
        with os.scandir(self.share_dir(share).joinpath(*names)) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else None
                if kind is not None:
                    out.append((entry.name, kind, st.st_size if kind == "file" else 0))
        return out

    def props_of(self, share: str, names: list[str], children: list[tuple[str, str]]) -> list[dict]:
        """Properties of some (name, kind) children of a directory; only those are decoded."""
        parent_key = "/".join(names).lower()
        rows = dict(
            self._db.execute(
                "SELECT key, data FROM nodes WHERE share = ? AND parent = ? AND key != ''", (share, parent_key)
            ).fetchall()
        )
        out = []
        for name, kind in children:
            data = rows.get(f"{parent_key}/{name}".lower().lstrip("/"))
            props = json.loads(data) if data else None
            if props is None or props.get("kind") != kind:
                props = self._default_node(share, [*names, name], kind)
            out.append(props)
        return out
