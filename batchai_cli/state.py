"""The control plane's state: one SQLite file under $BATCHAI_HOME. The only module that knows SQL.

Many CLI processes (and job agents) use the file at once, so it runs in WAL mode with a busy
timeout, every write is one `BEGIN IMMEDIATE` transaction (read-check-write cannot interleave),
and the schema carries a version (`PRAGMA user_version`) with forward-only migrations.

Resources are rows keyed by their ARM id in lower case (ARM ids compare case-insensitively);
`body` is the resource as az prints it (camelCase, `properties` flattened), stored as JSON.
A row's parent must exist (foreign key), so nothing can be created under a deleted workspace.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
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
    # What az never shows: a resource's secrets (storage keys, secret values, the full request), and
    # jobs' scheduling records (node claims, the runner process).
    """
    ALTER TABLE resources ADD COLUMN private TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE runs (
        job_key     TEXT PRIMARY KEY REFERENCES resources(key) ON DELETE CASCADE,
        cluster_key TEXT NOT NULL,
        priority    INTEGER NOT NULL,            -- 0 high, 1 normal, 2 low: queue order, then seq
        seq         INTEGER NOT NULL,            -- submission order
        node_count  INTEGER NOT NULL,
        phase       TEXT NOT NULL,               -- queued | running | terminating | ended
        nodes       TEXT NOT NULL DEFAULT '[]',  -- JSON: node indexes held while running
        runner      TEXT                         -- JSON: {"pid", "start", "host"} of the job's runner
    );
    CREATE INDEX runs_by_cluster ON runs(cluster_key, phase);
    """,
]
# Phases that hold (or wait for) a cluster's nodes.
ACTIVE_PHASES = ("queued", "running", "terminating")
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
    # SQLite says "disk I/O error" when the shared-memory file cannot grow on a full disk.
    if "full" in text or ("disk I/O" in text and _disk_full(path)):
        folder = os.path.dirname(path) or "."
        return StateStoreError(
            f"Cannot write the state file {path}: the disk that holds it is full ({text}).",
            hint=f"Free space on it (df -h {folder}), or set BATCHAI_HOME to a folder on another disk.",
        )
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StateStoreError(
            f"Cannot write the state file {path} ({text}).",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        )
    return StateStoreError(f"The state file {path} cannot be used ({text}).")


def _disk_full(path: str) -> bool:
    """Whether the file system that holds `path` has (almost) no free block left."""
    try:
        stat = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 64 * 1024


class State:
    """A connection to the state file. Open one per process with `open_state()`."""

    def __init__(self, path: str):
        self.path = path
        from batchai_cli import private

        try:
            # The file holds keys and secrets: owner-only from the moment it exists (SQLite gives
            # the -wal and -shm files the database's own mode).
            with private.umask():
                self._db = sqlite3.connect(path, timeout=_busy_timeout(), isolation_level=None)
                self._db.execute(f"PRAGMA busy_timeout = {int(_busy_timeout() * 1000)}")
                self._use_wal()
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise _translate(exc, path) from None

    def close(self) -> None:
        self._db.close()

    def _use_wal(self) -> None:
        """Put the file in WAL mode (once: the mode is kept in the file). SQLite refuses the switch
        with "database is locked" at once, without waiting, while another connection has a fresh
        file open, so the switch is retried here for as long as the busy timeout allows."""
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        deadline = time.monotonic() + _busy_timeout()
        delay = 0.001
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

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
        """One write transaction; the write lock is taken up front so check-then-write is atomic.
        SQLite errors inside it (but integrity ones, which callers turn into their own) come out
        as StateStoreError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        try:
            yield self._db
        except sqlite3.IntegrityError:
            self._rollback()
            raise
        except sqlite3.Error as exc:
            self._rollback()
            raise _translate(exc, self.path) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _translate(exc, self.path) from None

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back by itself on a
        full disk, and a ROLLBACK then fails with "no transaction is active", hiding why)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    # -- resources --------------------------------------------------------------------------

    def get(self, rid: ResourceId) -> dict | None:
        rows = self._query("SELECT body FROM resources WHERE key = ?", (rid.key,))
        return json.loads(rows[0][0]) if rows else None

    def _select(self, column: str, order: str, kind: str, parent, subscription, resource_group) -> list:
        """One column of the resources of one kind under a parent, or in a subscription / group."""
        if parent is not None:
            where, args = "parent_key = ? AND kind = ?", (parent.key, kind)
        else:
            where, args = "kind = ? AND subscription = ?", (kind, subscription)
            if resource_group:
                where += " AND resource_group = ?"
                args += (resource_group,)
        return [row[0] for row in self._query(f"SELECT {column} FROM resources WHERE {where} ORDER BY {order}", args)]

    def list(
        self,
        kind: str,
        *,
        parent: ResourceId | None = None,
        subscription: str | None = None,
        resource_group: str | None = None,
    ) -> list[dict]:
        """Resources of one kind under a parent, or (workspaces) in a subscription / resource group."""
        bodies = self._select("body", "created_at, name", kind, parent, subscription, resource_group)
        return [json.loads(body) for body in bodies]

    def children(self, rid: ResourceId) -> list[tuple[str, str]]:
        """(kind, name) of the direct children of a resource."""
        rows = self._query("SELECT kind, name FROM resources WHERE parent_key = ? ORDER BY kind, name", (rid.key,))
        return [(row[0], row[1]) for row in rows]

    def get_key_id(self, key: str) -> str | None:
        """The id, as the user spelled it, of the resource stored under `key` (a lower-cased id)."""
        rows = self._query("SELECT body FROM resources WHERE key = ?", (key,))
        return json.loads(rows[0][0]).get("id") if rows else None

    def get_private(self, rid: ResourceId) -> dict:
        """The part of a resource az never shows (keys, secret values); {} if none or no resource."""
        rows = self._query("SELECT private FROM resources WHERE key = ?", (rid.key,))
        return json.loads(rows[0][0]) if rows else {}

    def update_private(self, rid: ResourceId, change: Callable[[dict], dict]) -> dict:
        """Read-modify-write a resource's private part. MissingResource if it does not exist."""
        with self.transaction() as db:
            row = db.execute("SELECT private FROM resources WHERE key = ?", (rid.key,)).fetchone()
            if row is None:
                raise MissingResource(str(rid))
            private = change(json.loads(row[0]))
            db.execute("UPDATE resources SET private = ? WHERE key = ?", (json.dumps(private), rid.key))
        return private

    def create(self, rid: ResourceId, body: dict, *, private: dict | None = None) -> dict:
        """Insert a new resource. DuplicateResource if the id is taken, MissingParent if its parent is gone."""
        stamp = now_iso()
        parent = rid.parent
        try:
            with self.transaction() as db:
                if (
                    parent is not None
                    and not db.execute("SELECT 1 FROM resources WHERE key = ?", (parent.key,)).fetchone()
                ):
                    raise MissingParent(str(parent))
                db.execute(
                    "INSERT INTO resources (key, parent_key, kind, subscription, resource_group, name, body,"
                    " created_at, updated_at, private) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rid.key,
                        parent.key if parent else None,
                        rid.kind,
                        rid.subscription,
                        rid.resource_group,
                        rid.name,
                        json.dumps(body),
                        stamp,
                        stamp,
                        json.dumps(private or {}),
                    ),
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

    def names(
        self,
        kind: str,
        *,
        parent: ResourceId | None = None,
        subscription: str | None = None,
        resource_group: str | None = None,
    ) -> list[str]:
        """Names only, for shell completion (cheap: no JSON decoding)."""
        return self._select("name", "name", kind, parent, subscription, resource_group)

    # -- job runs -------------------------------------------------------------------------------

    def create_job(
        self,
        rid: ResourceId,
        body: dict,
        *,
        cluster_key: str,
        priority: int,
        node_count: int,
        private: dict,
        runner: dict | None = None,
    ) -> dict:
        """Insert a job (with its private part) and its queued run in one transaction.
        DuplicateResource if the name is taken, MissingParent if the experiment is gone."""
        stamp = now_iso()
        parent = rid.parent
        try:
            with self.transaction() as db:
                if not db.execute("SELECT 1 FROM resources WHERE key = ?", (parent.key,)).fetchone():
                    raise MissingParent(str(parent))
                db.execute(
                    "INSERT INTO resources (key, parent_key, kind, subscription, resource_group, name, body,"
                    " created_at, updated_at, private) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rid.key,
                        parent.key,
                        rid.kind,
                        rid.subscription,
                        rid.resource_group,
                        rid.name,
                        json.dumps(body),
                        stamp,
                        stamp,
                        json.dumps(private),
                    ),
                )
                db.execute(
                    "INSERT INTO runs (job_key, cluster_key, priority, seq, node_count, phase, runner)"
                    " VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs), ?, 'queued', ?)",
                    (rid.key, cluster_key, priority, node_count, json.dumps(runner)),
                )
        except sqlite3.IntegrityError:
            raise DuplicateResource(str(rid)) from None
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return body

    def get_run(self, job_key: str) -> dict | None:
        rows = self._query(
            "SELECT job_key, cluster_key, priority, seq, node_count, phase, nodes, runner FROM runs WHERE job_key = ?",
            (job_key,),
        )
        return _run(rows[0]) if rows else None

    def runs(self, *, cluster_key: str | None = None, phases: tuple[str, ...] = ACTIVE_PHASES) -> list[dict]:
        """Runs in the given phases (on one cluster, or everywhere), in queue order."""
        sql = (
            "SELECT job_key, cluster_key, priority, seq, node_count, phase, nodes, runner FROM runs"
            f" WHERE phase IN ({','.join('?' * len(phases))})"
        )
        args: tuple = phases
        if cluster_key is not None:
            sql += " AND cluster_key = ?"
            args += (cluster_key,)
        return [_run(row) for row in self._query(sql + " ORDER BY priority, seq", args)]

    def claim_nodes(self, job_key: str, usable_nodes: list[int]) -> list[int] | None:
        """Give a queued job its nodes if it is at the head of its cluster's queue (priority, then
        age) and enough of `usable_nodes` are free. Returns the node indexes, or None to keep waiting.
        Gang scheduling: all of a job's nodes at once, or none."""
        with self.transaction() as db:
            row = db.execute("SELECT cluster_key, node_count, phase FROM runs WHERE job_key = ?", (job_key,)).fetchone()
            if row is None or row[2] != "queued":
                return None
            cluster_key, node_count = row[0], row[1]
            head = db.execute(
                "SELECT job_key FROM runs WHERE cluster_key = ? AND phase = 'queued' ORDER BY priority, seq LIMIT 1",
                (cluster_key,),
            ).fetchone()
            if head is None or head[0] != job_key:
                return None
            busy: set[int] = set()
            for (nodes,) in db.execute(
                "SELECT nodes FROM runs WHERE cluster_key = ? AND phase IN ('running', 'terminating')", (cluster_key,)
            ):
                busy.update(json.loads(nodes))
            free = [node for node in usable_nodes if node not in busy]
            if len(free) < node_count:
                return None
            claimed = free[:node_count]
            db.execute("UPDATE runs SET phase = 'running', nodes = ? WHERE job_key = ?", (json.dumps(claimed), job_key))
            return claimed

    def update_job(
        self, rid: ResourceId, change: Callable[[dict, dict], dict] | None = None, **run_fields
    ) -> tuple[dict, dict]:
        """Change a job's body (change(body, run) -> body) and its run's fields in one transaction.
        MissingResource if the job is gone. Returns (body, run)."""
        with self.transaction() as db:
            row = db.execute("SELECT body FROM resources WHERE key = ?", (rid.key,)).fetchone()
            run_row = db.execute(
                "SELECT job_key, cluster_key, priority, seq, node_count, phase, nodes, runner FROM runs"
                " WHERE job_key = ?",
                (rid.key,),
            ).fetchone()
            if row is None or run_row is None:
                raise MissingResource(str(rid))
            body, run = json.loads(row[0]), _run(run_row)
            if change is not None:
                body = change(body, run)
                db.execute(
                    "UPDATE resources SET body = ?, updated_at = ? WHERE key = ?",
                    (json.dumps(body), now_iso(), rid.key),
                )
            if run_fields:
                unknown = set(run_fields) - {"phase", "nodes", "runner"}
                if unknown:
                    raise ValueError(f"not a run field: {sorted(unknown)}")
                encoded = {
                    name: json.dumps(value) if name in ("nodes", "runner") else value
                    for name, value in run_fields.items()
                }
                db.execute(
                    f"UPDATE runs SET {', '.join(f'{name} = ?' for name in encoded)} WHERE job_key = ?",
                    (*encoded.values(), rid.key),
                )
                run.update(run_fields)
        return body, run


def _run(row) -> dict:
    return {
        "job_key": row[0],
        "cluster_key": row[1],
        "priority": row[2],
        "seq": row[3],
        "node_count": row[4],
        "phase": row[5],
        "nodes": json.loads(row[6]),
        "runner": json.loads(row[7]) if row[7] else None,
    }


def open_state(*, create: bool = True) -> State:
    """Open (and create, migrate) the state file under $BATCHAI_HOME."""
    from batchai_cli import settings

    folder = settings.ensure_home() if create else settings.home()
    path = os.path.join(folder, STATE_FILE)
    if os.path.isdir(path):
        raise StateStoreError(f"The state file {path} is a folder.", hint="Remove it or set BATCHAI_HOME elsewhere.")
    return State(path)
