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

import configparser
import os
from contextlib import contextmanager
from pathlib import Path

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


def home() -> Path:
    """The folder that holds the settings file and the state database."""
    raw = os.environ.get("BATCHAI_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".batchai"


def ensure_home() -> Path:
    """Create $BATCHAI_HOME if needed; a clear error when it cannot be used."""
    path = home()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StateStoreError(
            f"BATCHAI_HOME ({path}) is a file, not a folder.",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        ) from None
    except OSError as exc:
        raise StateStoreError(
            f"Cannot create BATCHAI_HOME ({path}): {exc.strerror or exc}.",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        ) from None
    if not path.is_dir():
        raise StateStoreError(
            f"BATCHAI_HOME ({path}) is not a folder.", hint="Set BATCHAI_HOME to a folder you can write to."
        )
    return path


def config_path() -> Path:
    return home() / "config"


def _read() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    path = config_path()
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        pass
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise BatchAIError(
            f"The settings file {path} is not valid: {first_line}",
            hint="Fix it by hand or delete it; 'batchai configure' writes a new one.",
        ) from None
    except OSError as exc:
        raise BatchAIError(f"Cannot read the settings file {path}: {exc.strerror or exc}.") from None
    return parser


@contextmanager
def _locked_update():
    """Read-modify-write of the settings file under an exclusive lock, replaced atomically."""
    import fcntl
    import tempfile

    folder = ensure_home()
    try:
        lock = open(folder / "config.lock", "a+b")  # noqa: SIM115 - held for the whole update
    except OSError as exc:
        raise StateStoreError(
            f"Cannot write to BATCHAI_HOME ({folder}): {exc.strerror or exc}.",
            hint="Set BATCHAI_HOME to a folder you can write to.",
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        parser = _read()
        yield parser
        try:
            fd, tmp = tempfile.mkstemp(prefix=".config.", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                parser.write(handle)
            os.replace(tmp, config_path())
        except OSError as exc:
            raise StateStoreError(
                f"Cannot write the settings file in {folder}: {exc.strerror or exc}.",
                hint="Set BATCHAI_HOME to a folder you can write to.",
            ) from None


def get_default(name: str) -> str | None:
    """The configured default for `name` (group, workspace...), or None. Environment wins over the file."""
    value = os.environ.get(f"BATCHAI_DEFAULTS_{name.upper()}")
    if value:
        return value
    value = _read().get("defaults", name, fallback=None)
    return value or None


def list_defaults() -> list[dict]:
    """Every default in effect, as az's `configure --list-defaults` shows them."""
    result = {}
    parser = _read()
    if parser.has_section("defaults"):
        for name, value in parser.items("defaults"):
            if value:
                result[name] = {"name": name, "source": str(config_path()), "value": value}
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
    with _locked_update() as parser:
        if not parser.has_section("defaults"):
            parser.add_section("defaults")
        for name, value in pairs.items():
            if value:
                parser.set("defaults", name, value)
            else:
                parser.remove_option("defaults", name)


def subscription_id() -> str:
    """The stable local subscription id: from the settings file, generated once if absent."""
    current = _read().get("core", "subscription", fallback=None)
    if current:
        return current
    import uuid

    with _locked_update() as parser:
        # Another process may have written one while we waited for the lock: keep theirs.
        current = parser.get("core", "subscription", fallback=None)
        if not current:
            if not parser.has_section("core"):
                parser.add_section("core")
            current = str(uuid.uuid4())
            parser.set("core", "subscription", current)
    return current


def set_subscription_id(value: str) -> None:
    from batchai_cli import ids

    ids.check_subscription(value)
    with _locked_update() as parser:
        if not parser.has_section("core"):
            parser.add_section("core")
        parser.set("core", "subscription", value)
