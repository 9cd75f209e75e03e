"""A fast yes or no to "does this document pass this schema?", for the keywords our schemas use.

jsonschema costs about 70 ms to import (referencing, attrs, every metaschema), and its errors are
needed only to explain a document that has problems. So `check_schema` asks here first and
imports jsonschema only when the answer is not a plain yes. A yes here means Draft 2020-12, as
jsonschema applies it, finds no error (tests/config/test_quickcheck.py compares the two over the
corpus and mutations of it). Anything this module does not know (a keyword, a `$ref` outside
our schemas, an enum of objects) is a "not sure": `passes` returns False and jsonschema decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from batchai_cli.config.schemas import BASE_URL, load_schema

Check = Callable[[Any], bool]

# Keywords that never fail a document (annotations, and `then`/`else`, which `if` applies).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "errorMessage",
        "deprecated",
        "readOnly",
        "writeOnly",
        "then",
        "else",
    }
)


class _Unsupported(Exception):
    """A schema uses something this module does not decide: leave it to jsonschema."""


def passes(schema_url: str, data: Any) -> bool:
    """True when `data` has no error against the schema at `schema_url` (one of ours); False when
    it has one, or when this module cannot tell (then ask jsonschema)."""
    try:
        return _compiled(schema_url)(data)
    except _Unsupported:
        return False


@functools.cache
def _compiled(url: str) -> Check:
    """The check of the (sub)schema at `url` (a schema's $id, with a JSON pointer fragment or none)."""
    document_url, fragment = urldefrag(url)
    if not document_url.startswith(BASE_URL + "/"):
        raise _Unsupported(url)
    try:
        node = load_schema(document_url)
    except OSError:
        raise _Unsupported(url) from None
    if fragment:
        if not fragment.startswith("/"):
            raise _Unsupported(url)  # an anchor name
        for part in fragment[1:].split("/"):
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise _Unsupported(url) from None
    return _compile(node, document_url)


def _compile(schema: Any, base: str) -> Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict) or ("$id" in schema and schema["$id"] != base):
        raise _Unsupported("a schema that is not an object, or one that changes the base URL")
    checks = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        make = _KEYWORDS.get(keyword)
        if make is None:
            raise _Unsupported(keyword)
        checks.append(make(value, schema, base))
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    return lambda instance: all(check(instance) for check in checks)


def _always(instance: Any) -> bool:
    return True


def _never(instance: Any) -> bool:
    return False


# -- types, as jsonschema's Draft 2020-12 type checker has them -------------------------------------


def _is_number(instance: Any) -> bool:
    return isinstance(instance, (int, float)) and not isinstance(instance, bool)


def _is_integer(instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, float):
        return instance.is_integer()  # 2.0 is an integer; inf and nan are not
    return isinstance(instance, int)


_TYPES: dict[str, Check] = {
    "object": lambda instance: isinstance(instance, dict),
    "array": lambda instance: isinstance(instance, list),
    "string": lambda instance: isinstance(instance, str),
    "boolean": lambda instance: isinstance(instance, bool),
    "null": lambda instance: instance is None,
    "number": _is_number,
    "integer": _is_integer,
}


def _type(value: Any, schema: dict, base: str) -> Check:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(name in _TYPES for name in names):
        raise _Unsupported("type")
    tests = [_TYPES[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda instance: any(test(instance) for test in tests)


# -- objects ---------------------------------------------------------------------------------------


def _properties(value: dict, schema: dict, base: str) -> Check:
    checks = {name: _compile(sub, base) for name, sub in value.items()}

    def check(instance: Any) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(check(instance[name]) for name, check in checks.items() if name in instance)

    return check


def _pattern_properties(value: dict, schema: dict, base: str) -> Check:
    checks = [(re.compile(pattern), _compile(sub, base)) for pattern, sub in value.items()]

    def check(instance: Any) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(check(item) for key, item in instance.items() for regex, check in checks if regex.search(key))

    return check


def _additional_properties(value: Any, schema: dict, base: str) -> Check:
    known = set(schema.get("properties") or {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties") or {}]
    extra = _compile(value, base)

    def check(instance: Any) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(
            extra(item)
            for key, item in instance.items()
            if key not in known and not any(regex.search(key) for regex in patterns)
        )

    return check


def _required(value: list, schema: dict, base: str) -> Check:
    names = list(value)
    return lambda instance: not isinstance(instance, dict) or all(name in instance for name in names)


def _dependent_required(value: dict, schema: dict, base: str) -> Check:
    rules = {name: list(needed) for name, needed in value.items()}

    def check(instance: Any) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(all(other in instance for other in needed) for name, needed in rules.items() if name in instance)

    return check


def _min_properties(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, dict) or len(instance) >= value


def _max_properties(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, dict) or len(instance) <= value


# -- arrays ----------------------------------------------------------------------------------------


def _items(value: Any, schema: dict, base: str) -> Check:
    each = _compile(value, base)
    return lambda instance: not isinstance(instance, list) or all(each(item) for item in instance)


def _min_items(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, list) or len(instance) >= value


def _max_items(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, list) or len(instance) <= value


# -- strings and numbers ---------------------------------------------------------------------------


def _pattern(value: str, schema: dict, base: str) -> Check:
    regex = re.compile(value)  # jsonschema uses Python's re.search too
    return lambda instance: not isinstance(instance, str) or regex.search(instance) is not None


def _min_length(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, str) or len(instance) >= value


def _max_length(value: int, schema: dict, base: str) -> Check:
    return lambda instance: not isinstance(instance, str) or len(instance) <= value


def _bound(compare: Callable[[Any, Any], bool]) -> Callable[[Any, dict, str], Check]:
    def make(value: Any, schema: dict, base: str) -> Check:
        if not _is_number(value):
            raise _Unsupported("a bound that is not a number")
        return lambda instance: not _is_number(instance) or compare(instance, value)

    return make


# -- values ----------------------------------------------------------------------------------------


def _scalar_equal(left: Any, right: Any) -> bool:
    """jsonschema's equality for the values an enum of ours holds: strings, numbers, booleans,
    null; True is not 1, 1 is 1.0."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if left is None or right is None:
        return left is right
    if isinstance(left, str) or isinstance(right, str):
        return left == right
    return _is_number(left) and _is_number(right) and left == right


def _enum(value: list, schema: dict, base: str) -> Check:
    if not isinstance(value, list) or any(isinstance(each, (dict, list)) for each in value):
        raise _Unsupported("an enum of objects or arrays")
    strings = frozenset(each for each in value if isinstance(each, str))
    others = [each for each in value if not isinstance(each, str)]

    def check(instance: Any) -> bool:
        if isinstance(instance, str):
            return instance in strings
        if isinstance(instance, (dict, list)):
            return False
        return any(_scalar_equal(instance, each) for each in others)

    return check


def _const(value: Any, schema: dict, base: str) -> Check:
    return _enum([value], schema, base)


# -- combining -------------------------------------------------------------------------------------


def _all_of(value: list, schema: dict, base: str) -> Check:
    checks = [_compile(sub, base) for sub in value]
    return lambda instance: all(check(instance) for check in checks)


def _any_of(value: list, schema: dict, base: str) -> Check:
    checks = [_compile(sub, base) for sub in value]
    return lambda instance: any(check(instance) for check in checks)


def _one_of(value: list, schema: dict, base: str) -> Check:
    checks = [_compile(sub, base) for sub in value]
    return lambda instance: sum(1 for check in checks if check(instance)) == 1


def _not(value: Any, schema: dict, base: str) -> Check:
    check = _compile(value, base)
    return lambda instance: not check(instance)


def _if(value: Any, schema: dict, base: str) -> Check:
    condition = _compile(value, base)
    then = _compile(schema.get("then", True), base)
    otherwise = _compile(schema.get("else", True), base)
    return lambda instance: then(instance) if condition(instance) else otherwise(instance)


def _ref(value: str, schema: dict, base: str) -> Check:
    target = urljoin(base, value)
    # Compiled on first use: a schema may refer to itself.
    return lambda instance: _compiled(target)(instance)


_KEYWORDS: dict[str, Callable[[Any, dict, str], Check]] = {
    "type": _type,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "required": _required,
    "dependentRequired": _dependent_required,
    "minProperties": _min_properties,
    "maxProperties": _max_properties,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minimum": _bound(lambda instance, bound: not instance < bound),
    "maximum": _bound(lambda instance, bound: not instance > bound),
    "exclusiveMinimum": _bound(lambda instance, bound: not instance <= bound),
    "exclusiveMaximum": _bound(lambda instance, bound: not instance >= bound),
    "enum": _enum,
    "const": _const,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "if": _if,
    "$ref": _ref,
}
