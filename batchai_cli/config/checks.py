"""Rules no JSON Schema can state: duplicates across a list, numbers compared with each other, keys
that must parse, placeholders left to fill in.

They run on the normalized 2018-05-01 document whatever else is wrong with it, so every function
checks the types it touches instead of trusting them.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from datetime import timedelta

from batchai_cli.config.issues import Issue, describe
from batchai_cli.config.schemas import TOOLKIT_SETTINGS
from batchai_cli.durations import has_duration_form, parse_duration

ACCOUNT_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"
KEY_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_KEY>"
MOUNT_KINDS = ("azureFileShares", "azureBlobFileSystems", "fileServers", "unmanagedFileSystems", "localFolders")
_FREE_PLACEHOLDER = re.compile(r"<[^<>\n]{1,80}>|\[[Yy]our [^\]\n]{1,80}\]|FILL-IN-HERE", re.I)
_COMMAND_KEYS = {
    "commandLine",
    "commandLineArgs",
    "masterCommandLineArgs",
    "workerCommandLineArgs",
    "parameterServerCommandLineArgs",
    "mountCommand",
    "mountOptions",
    "$schema",
    "$comment",
}


def is_valid_ssh_public_key(text: str) -> bool:
    """az's check: at least two fields, and the base64 blob starts with the key type, length-prefixed."""
    parts = text.split()
    if len(parts) < 2:
        return False
    try:
        blob = base64.b64decode(parts[1].encode(), validate=False)
        (length,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error, ValueError):
        return False
    return blob[4 : 4 + length] == parts[0].encode()


def looks_like_key_path(text: str) -> bool:
    return (len(text.split()) == 1 and text.startswith(("~", "/", "."))) or text.endswith(".pub")


def check_document(data: dict, kind: str, *, toolkit: str | None = None) -> list[Issue]:
    properties = data.get("properties")
    if not isinstance(properties, dict):
        return []
    base = ("properties",)
    issues = unusable_text(properties, base)
    issues += placeholders(properties, base)
    if kind == "job":
        issues += mount_paths(properties.get("mountVolumes"), (*base, "mountVolumes"))
        issues += joined_paths(properties, base)
        issues += job_rules(properties, base)
        issues += schema_toolkit(properties, toolkit)
    elif kind == "cluster":
        node_setup = properties.get("nodeSetup")
        if isinstance(node_setup, dict):
            issues += mount_paths(node_setup.get("mountVolumes"), (*base, "nodeSetup", "mountVolumes"))
            issues += joined_paths(node_setup, (*base, "nodeSetup"))
        issues += scale_rules(properties.get("scaleSettings"), (*base, "scaleSettings"))
        issues += ssh_key(properties.get("userAccountSettings"), (*base, "userAccountSettings"))
    else:
        ssh = properties.get("sshConfiguration")
        if isinstance(ssh, dict):
            issues += ssh_key(ssh.get("userAccountSettings"), (*base, "sshConfiguration", "userAccountSettings"))
    return issues


def mount_paths(volumes, path: tuple, added: dict[tuple, str] | None = None) -> list[Issue]:
    """Two mounts on one relativeMountPath: az sent both, and the second hid the first.

    `added` labels the entries that options added ({(kind, index): "--afs-mount-path afs"}); a clash
    between an option and the file is reported at the file's entry, which has a line to point at.
    """
    if not isinstance(volumes, dict):
        return []
    added = added or {}
    taken: dict[str, tuple] = {}
    issues = []
    for kind in MOUNT_KINDS:
        entries = volumes.get(kind)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            mount = entry.get("relativeMountPath") if isinstance(entry, dict) else None
            if not isinstance(mount, str):
                continue
            where = (*path, kind, index, "relativeMountPath")
            normalized = "/".join(part for part in mount.split("/") if part not in ("", "."))
            if normalized not in taken:
                taken[normalized] = (kind, index, where)
                continue
            first_kind, first_index, first_where = taken[normalized]
            option, first_option = added.get((kind, index)), added.get((first_kind, first_index))
            if option and not first_option:
                issues.append(Issue(first_where, f'{option} mounts on "{mount}" too; choose another mount path'))
            elif option:
                issues.append(Issue(where, f'{option} and {first_option} mount on the same path "{mount}"'))
            else:
                issues.append(
                    Issue(
                        where,
                        f'two mounts on relativeMountPath "{mount}": '
                        f"{first_kind}[{first_index}] mounts there too; give each its own path",
                    )
                )
    return issues


_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_MOUNT_ROOTS = (
    "$AZ_BATCHAI_JOB_MOUNT_ROOT",
    "${AZ_BATCHAI_JOB_MOUNT_ROOT}",
    "$AZ_BATCHAI_MOUNT_ROOT",
    "${AZ_BATCHAI_MOUNT_ROOT}",
)


def escapes(path: str, *, relative: bool) -> str | None:
    """Why a path that batchai joins under a folder could leave it ('..', or absolute where it must
    be relative), or None. The one rule validate, job create and the agent apply."""
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        return "'..' is not allowed here: the path would leave its folder"
    if relative and (path.startswith(("/", "\\", "~")) or (len(path) > 1 and path[1] == ":")):
        return "must be a relative path (it is joined under the job's folder)"
    return None


def joined_paths(properties: dict, base: tuple) -> list[Issue]:
    """Paths joined under a job's folders or mount roots may not climb out of them (a pathSuffix
    of '../../victim' wrote into another job's outputs)."""
    checks: list[tuple[tuple, object, bool]] = []
    outputs = properties.get("outputDirectories")
    for index, entry in enumerate(outputs if isinstance(outputs, list) else []):
        if isinstance(entry, dict):
            checks.append(((*base, "outputDirectories", index, "pathSuffix"), entry.get("pathSuffix"), True))
            checks.append(((*base, "outputDirectories", index, "pathPrefix"), entry.get("pathPrefix"), False))
    inputs = properties.get("inputDirectories")
    for index, entry in enumerate(inputs if isinstance(inputs, list) else []):
        if isinstance(entry, dict):
            checks.append(((*base, "inputDirectories", index, "path"), entry.get("path"), False))
    checks.append(((*base, "stdOutErrPathPrefix"), properties.get("stdOutErrPathPrefix"), False))
    setup = properties.get("setupTask")
    if isinstance(setup, dict):
        checks.append(((*base, "setupTask", "stdOutErrPathPrefix"), setup.get("stdOutErrPathPrefix"), False))
    volumes = properties.get("mountVolumes")
    issues = []
    for kind in MOUNT_KINDS:
        entries = volumes.get(kind) if isinstance(volumes, dict) else None
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                where = (*base, "mountVolumes", kind, index, "relativeMountPath")
                checks.append((where, entry.get("relativeMountPath"), True))
                account = entry.get("accountName")
                # The rule job create applies (its request schema), so validate agrees with it.
                if (
                    isinstance(account, str)
                    and ACCOUNT_PLACEHOLDER not in account
                    and not _FREE_PLACEHOLDER.search(account)  # warned about as a placeholder
                    and not _ACCOUNT_NAME.fullmatch(account)
                ):
                    issues.append(
                        Issue(
                            (*base, "mountVolumes", kind, index, "accountName"),
                            "expected a storage account name: 3 to 24 lowercase letters and digits "
                            f"(a placeholder left to fill in?), got {describe(account)}",
                        )
                    )
    for where, value, relative in checks:
        if not isinstance(value, str):
            continue
        if not relative and not value.strip().startswith(_MOUNT_ROOTS):
            continue  # an absolute local folder: the user's own choice of place
        reason = escapes(value, relative=relative)
        if reason:
            issues.append(Issue(where, f"{reason}: {describe(value)}"))
    return issues


def job_rules(properties: dict, base: tuple) -> list[Issue]:
    issues: list[Issue] = []
    for field in ("inputDirectories", "outputDirectories"):
        issues += unique_names(properties.get(field), (*base, field), "id", "directory id")
    outputs = properties.get("outputDirectories")
    for index, entry in enumerate(outputs if isinstance(outputs, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"].lower() == "stdouterr":
            issues.append(
                Issue(
                    (*base, "outputDirectories", index, "id"),
                    '"stdouterr" is reserved for the job\'s stdout and stderr; choose another id',
                )
            )
    names: dict = {}
    for field in ("environmentVariables", "secrets"):
        issues += unique_names(properties.get(field), (*base, field), "name", "environment variable", names)
    node_count = properties.get("nodeCount")
    settings = properties.get("tensorFlowSettings")
    servers = settings.get("parameterServerCount") if isinstance(settings, dict) else None
    if _is_int(node_count) and _is_int(servers) and servers > node_count:
        issues.append(
            Issue(
                (*base, "tensorFlowSettings", "parameterServerCount"),
                f"at most nodeCount ({node_count}) parameter servers, got {servers}",
            )
        )
    issues += directory_references(properties, base)
    constraints = properties.get("constraints")
    limit = constraints.get("maxWallClockTime") if isinstance(constraints, dict) else None
    if isinstance(limit, str):
        duration = parse_duration(limit)
        if duration is None and has_duration_form(limit):
            issues.append(
                Issue(
                    (*base, "constraints", "maxWallClockTime"),
                    f"{describe(limit)} is longer than batchai can hold (at most 999999999 days)",
                )
            )
        if duration is not None and duration <= timedelta(0):
            issues.append(Issue((*base, "constraints", "maxWallClockTime"), "must be longer than zero"))
    return issues


_DIRECTORY_VARIABLE = re.compile(r"\$\{?AZ_BATCHAI_(INPUT|OUTPUT)_([A-Za-z0-9_]+)\}?")


def directory_references(properties: dict, base: tuple) -> list[Issue]:
    """Warnings for $AZ_BATCHAI_INPUT_<ID> and $AZ_BATCHAI_OUTPUT_<ID> that no input or output
    directory defines: the variable is unset on the node, so the path it starts is wrong."""
    defined = {}
    for kind, field in (("INPUT", "inputDirectories"), ("OUTPUT", "outputDirectories")):
        entries = properties.get(field)
        defined[kind] = {
            e["id"]
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, dict) and isinstance(e.get("id"), str)
        }
    issues: list[Issue] = []

    def visit(node, path: tuple) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                visit(value, (*path, index))
        elif isinstance(node, str):
            for kind, directory_id in dict.fromkeys(_DIRECTORY_VARIABLE.findall(node)):
                if directory_id in defined[kind]:
                    continue
                field = "inputDirectories" if kind == "INPUT" else "outputDirectories"
                known = ", ".join(sorted(defined[kind])) or "none"
                issues.append(
                    Issue(
                        path,
                        f"$AZ_BATCHAI_{kind}_{directory_id} is used, but no {field} entry has the id "
                        f'"{directory_id}" (ids: {known}), so it is unset on the node',
                        "warning",
                    )
                )

    visit(properties, base)
    return issues


def unique_names(entries, path: tuple, key: str, what: str, seen: dict | None = None) -> list[Issue]:
    issues: list[Issue] = []
    seen = {} if seen is None else seen
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        name = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            issues.append(Issue((*path, index, key), f'{what} "{name}" is given twice (also at {seen[name]})'))
        else:
            seen[name] = f"{path[-1]}[{index}]"
    return issues


def scale_rules(scale, path: tuple) -> list[Issue]:
    auto = scale.get("autoScale") if isinstance(scale, dict) else None
    if not isinstance(auto, dict):
        return []
    low, high, initial = (auto.get(k) for k in ("minimumNodeCount", "maximumNodeCount", "initialNodeCount"))
    where = (*path, "autoScale")
    if _is_int(low) and _is_int(high) and low > high:
        return [
            Issue(
                (*where, "maximumNodeCount"),
                f"Maximum nodes count must be greater or equal to minimum nodes count ({high} < {low})",
            )
        ]
    if _is_int(low) and _is_int(high) and _is_int(initial) and not low <= initial <= high:
        return [
            Issue(
                (*where, "initialNodeCount"),
                f"initialNodeCount must be between minimumNodeCount ({low}) "
                f"and maximumNodeCount ({high}), got {initial}",
            )
        ]
    return []


def ssh_key(account, path: tuple) -> list[Issue]:
    key = account.get("adminUserSshPublicKey") if isinstance(account, dict) else None
    if not isinstance(key, str) or looks_like_key_path(key) or is_valid_ssh_public_key(key):
        return []
    return [Issue((*path, "adminUserSshPublicKey"), "Incorrect ssh public key value.")]


def schema_toolkit(properties: dict, toolkit: str | None) -> list[Issue]:
    if toolkit is None:
        return []
    others = [key for key in TOOLKIT_SETTINGS if key in properties and key != toolkit]
    if not others:
        return []
    return [
        Issue(
            ("$schema",),
            f"$schema is the {TOOLKIT_SETTINGS[toolkit]} job schema, but the job gives {' and '.join(others)}",
            "warning",
        )
    ]


def unusable_text(node, path: tuple) -> list[Issue]:
    """Strings no command line, variable or path can carry: a NUL byte, a lone surrogate (they
    passed validate and failed at run time with a raw ValueError or UnicodeEncodeError)."""
    issues: list[Issue] = []
    if isinstance(node, dict):
        for key, value in node.items():
            issues += unusable_text(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            issues += unusable_text(value, (*path, index))
    elif isinstance(node, str):
        if "\x00" in node:
            issues.append(Issue(path, "has a NUL character (\\u0000): no command line, variable or path can hold it"))
        elif any("\ud800" <= char <= "\udfff" for char in node):
            issues.append(Issue(path, "contains a lone UTF-16 surrogate, which is not text; write the character"))
    return issues


def placeholders(node, path: tuple, in_mounts: bool = False) -> list[Issue]:
    """Unfilled placeholders: az replaced its two only inside mountVolumes, and never free text."""
    issues: list[Issue] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in _COMMAND_KEYS:
                issues += placeholders(value, (*path, key), in_mounts or key == "mountVolumes")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            issues += placeholders(value, (*path, index), in_mounts)
    elif isinstance(node, str):
        rest = node.replace(ACCOUNT_PLACEHOLDER, "").replace(KEY_PLACEHOLDER, "")
        if rest != node and not in_mounts:
            issues.append(
                Issue(
                    path,
                    "the <AZURE_BATCHAI_STORAGE_...> placeholders are filled in only inside "
                    "mountVolumes (as az did); here it stays as written",
                    "warning",
                )
            )
        found = _FREE_PLACEHOLDER.search(rest)
        if found:
            issues.append(
                Issue(
                    path,
                    f"{describe(found.group())} looks like a placeholder left to fill in (az sent it as written)",
                    "warning",
                )
            )
    return issues


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
