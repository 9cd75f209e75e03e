"""$BATCHAI_HOME and the user's settings file: defaults (`batchai configure`) and the subscription id.

The settings file is `$BATCHAI_HOME/config`, an INI file shaped like az's `~/.azure/config`:

    [core]
    subscription = 5c1e...        # stable local id, generated on first use, settable
    [defaults]
    group = rg1
    workspace = ws1

Environment variables `BATCHAI_DEFAULTS_<NAME>` (e.g. BATCHAI_DEFAULTS_GROUP) override the file, as
AZURE_DEFAULTS_GROUP does for az. Writes are atomic (temp file + rename) under a lock, so concurrent
CLI processes never see a half-written file and agree on one subscription id.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from batchai_cli.errors import BatchAIError, StateStoreError, UsageError

# The defaults `batchai configure --defaults` knows, and what each one fills in.
DEFAULT_NAMES = {
    "group": "--resource-group/-g",
    "workspace": "--workspace/-w",
    "experiment": "--experiment/-e",
    "cluster": "--cluster/-c",
    "location": "--location/-l",
    "output": "--output/-o",
}
OUTPUT_FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "yamlc", "none")


def home() -> str:
    """The folder that holds the settings file and the state database.

    (Paths are plain strings in this module: pathlib costs more to import than `--help` may spend.)
    """
    raw = os.environ.get("BATCHAI_HOME")
    return os.path.expanduser(raw) if raw else os.path.join(os.path.expanduser("~"), ".batchai")


def ensure_home() -> str:
    """Create $BATCHAI_HOME if needed (owner-only: it holds storage keys and secrets); a clear error
    when it cannot be used, and a warning (once per process) when an existing one is open to others."""
    from batchai_cli import private

    path = home()
    try:
        private.makedirs(path)
    except (FileExistsError, NotADirectoryError):
        raise _not_a_folder(path) from None
    except OSError as exc:
        raise StateStoreError(
            f"Cannot create BATCHAI_HOME ({path}): {exc.strerror or exc}.",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        ) from None
    if not os.path.isdir(path):
        raise _not_a_folder(path)
    if _warned.get("home") != path:
        _warned["home"] = path
        mode = private.looser_than_owner(path)
        if mode is not None:
            from batchai_cli import log

            log.warning(
                "BATCHAI_HOME (%s) can be read by other users (mode %03o), and it holds storage keys and "
                "secrets. Run: chmod -R go= %s",
                path,
                mode,
                path,
            )
    return path


_warned: dict[str, str] = {}


def _not_a_folder(path: str) -> StateStoreError:
    return StateStoreError(
        f"BATCHAI_HOME ({path}) is a file, not a folder.", hint="Set BATCHAI_HOME to a folder you can write to."
    )


def config_path() -> str:
    return os.path.join(home(), "config")


Sections = dict[str, dict[str, str]]
_cache: dict = {}


def parse_ini(text: str, path: str) -> Sections:
    """Parse the settings file: `[section]` headers, `name = value` lines, `#`/`;` comments.

    A small parser of our own rather than configparser, whose import and regex compiles cost a
    noticeable share of every command's start-up.
    """
    sections: Sections = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), {})
            continue
        name, sep, value = line.partition("=")
        if not sep or current is None or not name.strip():
            raise BatchAIError(
                f"The settings file {path} is not valid: line {number}: {raw.strip()!r}.",
                hint="Fix it by hand or delete it; 'batchai configure' writes a new one.",
            )
        current[name.strip().lower()] = value.strip()
    return sections


def format_ini(sections: Sections) -> str:
    return "".join(
        f"[{section}]\n" + "".join(f"{name} = {value}\n" for name, value in values.items()) + "\n"
        for section, values in sections.items()
    )


def _read() -> Sections:
    """The settings file's contents (re-read only when the file changes)."""
    path = config_path()
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        if _cache.get("key") == key:
            return _cache["sections"]
        with open(path, encoding="utf-8") as handle:
            sections = parse_ini(handle.read(), path)
    except FileNotFoundError:
        return {}
    except NotADirectoryError:
        raise _not_a_folder(home()) from None
    except UnicodeDecodeError:
        raise BatchAIError(
            f"The settings file {path} is not valid: it is not UTF-8 text.",
            hint="Fix it by hand or delete it; 'batchai configure' writes a new one.",
        ) from None
    except OSError as exc:
        raise BatchAIError(f"Cannot read the settings file {path}: {exc.strerror or exc}.") from None
    _cache.update(key=key, sections=sections)
    return sections


@contextmanager
def _locked_update():
    """Read-modify-write of the settings file under an exclusive lock, replaced atomically."""
    import fcntl
    import tempfile

    from batchai_cli import private

    folder = ensure_home()
    try:
        lock = os.fdopen(private.open_file(os.path.join(folder, "config.lock"), os.O_RDWR), "r+b")
    except OSError as exc:
        raise StateStoreError(
            f"Cannot write to BATCHAI_HOME ({folder}): {exc.strerror or exc}.",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _cache.clear()
        sections = {name: dict(values) for name, values in _read().items()}
        yield sections
        try:
            fd, tmp = tempfile.mkstemp(prefix=".config.", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(format_ini(sections))
            os.replace(tmp, config_path())
        except OSError as exc:
            raise StateStoreError(
                f"Cannot write the settings file in {folder}: {exc.strerror or exc}.",
                hint="Set BATCHAI_HOME to a folder you can write to.",
            ) from None
        _cache.clear()


def get_default(name: str) -> str | None:
    """The configured default for `name` (group, workspace...), or None. Environment wins over the file."""
    value = os.environ.get(f"BATCHAI_DEFAULTS_{name.upper()}")
    if value:
        return value
    return _read().get("defaults", {}).get(name) or None


def list_defaults() -> list[dict]:
    """Every default in effect, as az's `configure --list-defaults` shows them."""
    result = {}
    for name, value in _read().get("defaults", {}).items():
        if value:
            result[name] = {"name": name, "source": config_path(), "value": value}
    for name in DEFAULT_NAMES:
        value = os.environ.get(f"BATCHAI_DEFAULTS_{name.upper()}")
        if value:
            result[name] = {"name": name, "source": f"BATCHAI_DEFAULTS_{name.upper()}", "value": value}
    return [result[name] for name in sorted(result)]


def set_defaults(pairs: dict[str, str]) -> None:
    """Set (or, with an empty value, remove) defaults. Unknown names and bad values are usage errors."""
    from batchai_cli import ids

    for name, value in pairs.items():
        if name not in DEFAULT_NAMES:
            known = ", ".join(DEFAULT_NAMES)
            raise UsageError(f"Unknown default '{name}'.", hint=f"Known defaults: {known}.")
        if not value:
            continue
        if name == "output" and value not in OUTPUT_FORMATS:
            raise UsageError(
                f"'{value}' is not a valid output format.", hint=f"Choose one of: {', '.join(OUTPUT_FORMATS)}."
            )
        if name == "group":
            ids.check_resource_group(value)
        elif name in ("workspace", "experiment", "cluster"):
            ids.check_name(value, name)
    with _locked_update() as sections:
        defaults = sections.setdefault("defaults", {})
        for name, value in pairs.items():
            if value:
                defaults[name] = value
            else:
                defaults.pop(name, None)


def subscription_id() -> str:
    """The stable local subscription id: from the settings file, generated once if absent."""
    current = _read().get("core", {}).get("subscription")
    if current:
        return current
    import uuid

    with _locked_update() as sections:
        core = sections.setdefault("core", {})
        # Another process may have written one while we waited for the lock: keep theirs.
        current = core.get("subscription")
        if not current:
            current = core["subscription"] = str(uuid.uuid4())
    return current


def set_subscription_id(value: str) -> None:
    from batchai_cli import ids

    ids.check_subscription(value)
    with _locked_update() as sections:
        sections.setdefault("core", {})["subscription"] = value


def shared_root() -> str:
    """The folder every node of a job can see: job bundles and node reports live under it.

    $BATCHAI_SHARED_DIR, else `shared_dir` in the settings file (`batchai configure --shared-dir`),
    else $BATCHAI_HOME/shared. On Slurm across machines it must be a file system every node mounts
    at the same path (NFS, Lustre); $BATCHAI_HOME itself need not be, and nodes never open state.db.
    """
    raw = os.environ.get("BATCHAI_SHARED_DIR") or _read().get("core", {}).get("shared_dir")
    return os.path.abspath(os.path.expanduser(raw)) if raw else os.path.join(home(), "shared")


def set_shared_root(value: str) -> None:
    """Set (or, with an empty value, remove) the shared folder setting."""
    with _locked_update() as sections:
        core = sections.setdefault("core", {})
        if value:
            core["shared_dir"] = os.path.abspath(os.path.expanduser(value))
        else:
            core.pop("shared_dir", None)
