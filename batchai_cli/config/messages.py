"""jsonschema errors, said the way a person would say them.

"is not valid under any of the given schemas" becomes "give either manual or autoScale, not both";
an unknown key becomes a warning with the closest known key. Schemas may carry an `errorMessage`
(the keyword VS Code also shows) on the subschema a rule lives in; it is used where it fits.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from batchai_cli.config.issues import Issue, describe
from batchai_cli.config.schemas import TOOLKIT_SETTINGS, resolve

TYPE_NAMES = {
    "integer": "an integer",
    "string": "a string",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
    "number": "a number",
    "null": "null",
}
_DIGITS = re.compile(r"^\s*[+-]?\d{1,18}\s*$")

# Keys that were real fields of other API versions or are read-only: said plainly, not guessed at.
KNOWN_ELSEWHERE = {
    "location": "a field of the older APIs (2018-05-01 dropped it; the workspace decides where things run)",
    "experimentName": "a field of the older APIs; in 2018-05-01 the experiment is given with -e",
    "priority": "a field of the older APIs; 2018-05-01 has schedulingPriority (low, normal or high)",
    "toolType": "read-only: the service derives it from the toolkit settings object",
    "createNew": "a field of the older APIs (2018-05-01 always creates output directories)",
    "runElevated": "a field of the older APIs (2018-05-01 runs setup tasks as root)",
    "credentialsInfo": "the 2017-09-01-preview name of credentials; write credentials",
    "stdOutErrPathSuffix": "read-only: the service sets it",
    "jobOutputDirectoryPathSegment": "read-only: the service sets it",
    "provisioningState": "read-only: the service sets it",
    "executionState": "read-only: the service sets it",
}


@dataclass
class Context:
    """What translating needs besides the error: the schema document, and 2018-05-01's for old files."""

    root: dict
    version: str
    current_root: dict | None = None  # set for files of an older API version


def translate(error, ctx: Context, coercions: dict) -> list[Issue]:
    path = tuple(error.absolute_path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    custom = schema.get("errorMessage")

    if keyword == "additionalProperties":
        return unknown_keys(path, instance, schema, ctx)
    if keyword == "type":
        expected = error.validator_value
        if expected == "integer" and isinstance(instance, str) and _DIGITS.match(instance):
            number = int(instance)
            coercions[path] = number
            return [
                Issue(
                    path,
                    f"a number in quotes ({describe(instance)}): az converted it to {number}, and so "
                    f"does batchai; write {number} without quotes",
                    "warning",
                )
            ]
        if expected == "integer" and isinstance(instance, float):
            return [Issue(path, f"expected a whole number, got {instance:g}")]
        return [Issue(path, f"expected {_type_names(expected)}, got {describe(instance)}")]
    if keyword == "required":
        return missing(path, instance, error.validator_value, schema, ctx, custom)
    if keyword in ("oneOf", "anyOf"):
        return choice(path, instance, error, ctx, custom, coercions)
    if keyword == "not":
        return [Issue(path, custom or _not_message(error.validator_value))]
    if keyword == "enum":
        return [Issue(path, _enum_message(instance, error.validator_value))]
    if keyword == "const":
        return [Issue(path, f"expected {describe(error.validator_value)}, got {describe(instance)}")]
    if keyword == "pattern":
        expected = custom or f"a value matching {error.validator_value}"
        return [Issue(path, f"expected {expected}, got {describe(instance)}")]
    if keyword == "minLength":
        return [Issue(path, "must not be empty" if instance == "" else f"too short: {describe(instance)}")]
    if keyword == "minimum":
        return [Issue(path, f"expected at least {error.validator_value}, got {describe(instance)}")]
    if keyword == "maximum":
        return [Issue(path, f"expected at most {error.validator_value}, got {describe(instance)}")]
    if keyword == "maxItems":
        return [Issue(path, f"at most {error.validator_value} items, got {len(instance)}")]
    if keyword == "dependentRequired":
        return [
            Issue(path, f"{name} needs {need} (it is given without it)")
            for name, needs in error.validator_value.items()
            if name in instance
            for need in needs
            if need not in instance
        ]
    if keyword == "false":
        return [Issue(path, "not allowed here")]
    return [Issue(path, custom or error.message)]


def _type_names(expected) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    return " or ".join(TYPE_NAMES.get(name, name) for name in names)


def _enum_message(value: Any, allowed: list) -> str:
    choices = ", ".join(describe(item) for item in allowed)
    message = f"expected one of {choices}, got {describe(value)}"
    if isinstance(value, str):
        folded = [item for item in allowed if isinstance(item, str) and item.lower() == value.lower()]
        close = folded or difflib.get_close_matches(value, [a for a in allowed if isinstance(a, str)], n=1)
        if close:
            message += f'; did you mean "{close[0]}"?'
    return message


def _not_message(inner: Any) -> str:
    if isinstance(inner, dict) and list(inner) == ["required"] and len(inner["required"]) == 2:
        first, second = inner["required"]
        return f"give either {first} or {second}, not both"
    return "this combination is not allowed"


def missing(path, instance, required: list, schema: dict, ctx: Context, custom: str | None) -> list[Issue]:
    properties = schema.get("properties", {})
    issues = []
    for name in required:
        if isinstance(instance, dict) and name not in instance:
            if custom:
                message = custom
            else:
                about = _first_sentence(properties.get(name, {}), resolve(ctx.root, properties.get(name, {})))
                message = "required, but missing" + (f" ({about})" if about else "")
            issues.append(Issue((*path, name), message, anchor="parent"))
    return issues


def _first_sentence(*schemas: dict) -> str:
    for schema in schemas:
        text = schema.get("description", "") if isinstance(schema, dict) else ""
        if text:
            sentence = text.split(". ")[0].rstrip(".")
            # "Number of nodes" reads better mid-sentence as "number of nodes"; "CNTK ..." stays.
            return sentence if sentence[:2].isupper() else sentence[0].lower() + sentence[1:]
    return ""


def choice(path, instance, error, ctx: Context, custom: str | None, coercions: dict) -> list[Issue]:
    branches = error.validator_value
    keys = [
        b["required"][0]
        for b in branches
        if isinstance(b, dict) and list(b) == ["required"] and len(b["required"]) == 1
    ]
    if len(keys) == len(branches) and isinstance(instance, dict):
        present = [key for key in keys if key in instance]
        return [Issue(path, _choice_message(keys, present))]
    if custom:
        return [Issue(path, custom)]
    from jsonschema.exceptions import best_match

    best = best_match(error.context) if error.context else None
    return translate(best, ctx, coercions) if best is not None else [Issue(path, "not valid here")]


def _choice_message(keys: list[str], present: list[str]) -> str:
    if set(keys) <= set(TOOLKIT_SETTINGS):
        if not present:
            return "no toolkit settings: a job gives exactly one of " + ", ".join(keys)
        return "a job has one toolkit, but this one gives " + " and ".join(present) + "; keep one"
    if len(keys) == 2:
        first, second = keys
        return f"give either {first} or {second}, not both" if present else f"give either {first} or {second}"
    if not present:
        return "give one of " + ", ".join(keys)
    return "give only one of " + ", ".join(keys) + "; this gives " + " and ".join(present)


def unknown_keys(path, instance, schema: dict, ctx: Context) -> list[Issue]:
    if not isinstance(instance, dict):
        return []
    known = list(schema.get("properties", {}))
    issues = []
    for key in instance:
        if key in known:
            continue
        issues.append(Issue((*path, key), _unknown_message(key, known, schema, path, ctx), "warning", "key"))
    return issues


def _unknown_message(key: str, known: list[str], schema: dict, path, ctx: Context) -> str:
    head = f'unknown key "{key}", ignored (as az did)'
    if ctx.current_root is not None and _known_in_current(key, schema, ctx):
        return (
            f'"{key}" is not part of API {ctx.version}, but 2018-05-01 has it and batchai uses it; '
            "update $schema to 2018-05-01"
        )
    if key in KNOWN_ELSEWHERE:
        return f"{head}: {KNOWN_ELSEWHERE[key]}"
    if key == "type" and path[-2:-1] == ("outputDirectories",):
        return f"{head}: a field of the older APIs (the kind of output; 2018-05-01 dropped it)"
    if path == () and key in _base_keys(ctx.root):
        return f'{head}: it belongs inside "properties"'
    folded = {name.lower(): name for name in known}
    close = [folded[key.lower()]] if key.lower() in folded else difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'{head}; did you mean "{close[0]}"?'
    for name in known:
        child = resolve(ctx.root, schema["properties"][name])
        if isinstance(child, dict) and key in child.get("properties", {}):
            return f'{head}; it belongs inside "{name}" ({name}.{key})'
    return head


def _base_keys(root: dict) -> set[str]:
    then = root.get("then", {}).get("properties", {}).get("properties")
    base = resolve(root, then) if then else {}
    return set(base.get("properties", {})) if isinstance(base, dict) else set()


def _known_in_current(key: str, schema: dict, ctx: Context) -> bool:
    for name, definition in ctx.root.get("$defs", {}).items():
        if definition is schema:
            current = ctx.current_root.get("$defs", {}).get(name, {})
            return key in current.get("properties", {})
    return False
