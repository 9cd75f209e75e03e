"""The control plane's state: one SQLite file under $BATCHAI_HOME. The only module that knows SQL.

Many CLI processes (and job agents) use the file at once, so it runs in WAL mode with a busy
timeout, every write is one `BEGIN IMMEDIATE` transaction (read-check-write cannot interleave),
and the schema carries a version (`PRAGMA user_version`) with forward-only migrations.

Resources are rows keyed by their ARM id in lower case (ARM ids compare case-insensitively);
`body` is the resource as az prints it (camelCase, `properties` flattened), stored as JSON.
A row's parent must exist (foreign key), so nothing can be created under a deleted workspace.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from batchai_cli.errors import StateStoreError
from batchai_cli.ids import ResourceId

STATE_FILE = "state.db"

# Forward-only migrations: MIGRATIONS[i] takes the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE resources (
        key          TEXT PRIMARY KEY,                 -- lower-cased ARM id
        parent_key   TEXT REFERENCES resources(key),   -- NULL for workspaces
        kind         TEXT NOT NULL,
        subscription TEXT NOT NULL COLLATE NOCASE,
        resource_group TEXT NOT NULL COLLATE NOCASE,
        name         TEXT NOT NULL,
        body         TEXT NOT NULL,                    -- az-shaped JSON
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX resources_by_parent ON resources(parent_key, kind);
    CREATE INDEX resources_by_group ON resources(kind, subscription, resource_group);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class DuplicateResource(Exception):
    """A resource with this id already exists."""


class MissingParent(Exception):
    """The resource's parent (workspace, experiment) does not exist."""


class MissingResource(Exception):
    """No resource has this id."""


class HasChildren(Exception):
    """The resource still holds others; `children` lists them as (kind, name)."""

    def __init__(self, children: list[tuple[str, str]]):
        super().__init__(children)
        self.children = children


def _busy_timeout() -> float:
    try:
        return float(os.environ.get("BATCHAI_STATE_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def now_iso() -> str:
    """The current time as az prints it: ISO 8601 with microseconds and +00:00."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()


def _translate(exc: sqlite3.Error, path: str) -> StateStoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StateStoreError(
            f"The state file {path} is locked by another batchai process (waited {_busy_timeout():g} s).",
            hint="Try again when it finishes, or raise BATCHAI_STATE_TIMEOUT (seconds).",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StateStoreError(
            f"The state file {path} is corrupt ({text}).",
            hint=f"Move it aside (mv {path} {path}.broken) to start with an empty state.",
        )
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StateStoreError(
            f"Cannot write the state file {path} ({text}).",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        )
    if "full" in text:
        return StateStoreError(f"Cannot write the state file {path}: the disk is full.", hint="Free some space.")
    return StateStoreError(f"The state file {path} cannot be used ({text}).")


class State:
    """A connection to the state file. Open one per process with `open_state()`."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=_busy_timeout(), isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(_busy_timeout() * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise _translate(exc, path) from None

    def close(self) -> None:
        self._db.close()

    # -- schema -----------------------------------------------------------------------------

    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"The state file {self.path} was written by a newer batchai "
                f"(schema {version}; this one knows up to {SCHEMA_VERSION}).",
                hint="Upgrade batchai, or point BATCHAI_HOME elsewhere.",
            )
        with self.transaction():
            # Another process may have migrated while we waited for the write lock.
            version = self.schema_version()
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken up front so check-then-write is atomic."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise _translate(exc, self.path) from None

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    # -- resources --------------------------------------------------------------------------

    def get(self, rid: ResourceId) -> dict | None:
        rows = self._query("SELECT body FROM resources WHERE key = ?", (rid.key,))
        return json.loads(rows[0][0]) if rows else None

    def list(self, kind: str, *, parent: ResourceId | None = None, subscription: str | None = None,
             resource_group: str | None = None) -> list[dict]:
        """Resources of one kind under a parent, or (workspaces) in a subscription / resource group."""
        if parent is not None:
            rows = self._query(
                "SELECT body FROM resources WHERE parent_key = ? AND kind = ? ORDER BY created_at, name",
                (parent.key, kind),
            )
        else:
            sql = "SELECT body FROM resources WHERE kind = ? AND subscription = ?"
            args: tuple = (kind, subscription)
            if resource_group is not None:
                sql += " AND resource_group = ?"
                args += (resource_group,)
            rows = self._query(sql + " ORDER BY created_at, name", args)
        return [json.loads(row[0]) for row in rows]

    def children(self, rid: ResourceId) -> list[tuple[str, str]]:
        """(kind, name) of the direct children of a resource."""
        rows = self._query(
            "SELECT kind, name FROM resources WHERE parent_key = ? ORDER BY kind, name", (rid.key,)
        )
        return [(row[0], row[1]) for row in rows]

    def create(self, rid: ResourceId, body: dict) -> dict:
        """Insert a new resource. DuplicateResource if the id is taken, MissingParent if its parent is gone."""
        stamp = now_iso()
        parent = rid.parent
        try:
            with self.transaction() as db:
                if parent is not None and not db.execute(
                    "SELECT 1 FROM resources WHERE key = ?", (parent.key,)
                ).fetchone():
                    raise MissingParent(str(parent))
                db.execute(
                    "INSERT INTO resources (key, parent_key, kind, subscription, resource_group, name, body,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rid.key, parent.key if parent else None, rid.kind, rid.subscription, rid.resource_group,
                     rid.name, json.dumps(body), stamp, stamp),
                )
        except sqlite3.IntegrityError:
            raise DuplicateResource(str(rid)) from None
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return body

    def update(self, rid: ResourceId, change: Callable[[dict], dict]) -> dict:
        """Read-modify-write one resource atomically. MissingResource if it does not exist."""
        with self.transaction() as db:
            row = db.execute("SELECT body FROM resources WHERE key = ?", (rid.key,)).fetchone()
            if row is None:
                raise MissingResource(str(rid))
            body = change(json.loads(row[0]))
            db.execute(
                "UPDATE resources SET body = ?, updated_at = ? WHERE key = ?",
                (json.dumps(body), now_iso(), rid.key),
            )
        return body

    def delete(self, rid: ResourceId, *, recursive: bool = False) -> None:
        """Delete a resource (and, if recursive, everything below it) in one transaction.

        MissingResource if it does not exist. Without `recursive`, a resource that still has
        children is left alone and HasChildren raised, naming them (checked inside the
        transaction, so a child created a moment earlier is never orphaned).
        """
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM resources WHERE key = ?", (rid.key,)).fetchone():
                raise MissingResource(str(rid))
            if recursive:
                db.execute(
                    "WITH RECURSIVE tree(key) AS (SELECT ? UNION ALL "
                    " SELECT r.key FROM resources r JOIN tree t ON r.parent_key = t.key)"
                    " DELETE FROM resources WHERE key IN (SELECT key FROM tree)",
                    (rid.key,),
                )
                return
            children = db.execute(
                "SELECT kind, name FROM resources WHERE parent_key = ? ORDER BY kind, name", (rid.key,)
            ).fetchall()
            if children:
                raise HasChildren([(row[0], row[1]) for row in children])
            db.execute("DELETE FROM resources WHERE key = ?", (rid.key,))

    def names(self, kind: str, *, parent: ResourceId | None = None, subscription: str | None = None,
              resource_group: str | None = None) -> list[str]:
        """Names only, for shell completion (cheap: no JSON decoding)."""
        if parent is not None:
            rows = self._query(
                "SELECT name FROM resources WHERE parent_key = ? AND kind = ? ORDER BY name", (parent.key, kind)
            )
        else:
            sql = "SELECT name FROM resources WHERE kind = ? AND subscription = ?"
            args: tuple = (kind, subscription)
            if resource_group:
                sql += " AND resource_group = ?"
                args += (resource_group,)
            rows = self._query(sql + " ORDER BY name", args)
        return [row[0] for row in rows]


def open_state(*, create: bool = True) -> State:
    """Open (and create, migrate) the state file under $BATCHAI_HOME."""
    from batchai_cli import settings

    folder = settings.ensure_home() if create else settings.home()
    path = os.path.join(folder, STATE_FILE)
    if os.path.isdir(path):
        raise StateStoreError(f"The state file {path} is a folder.", hint="Remove it or set BATCHAI_HOME elsewhere.")
    return State(path)
