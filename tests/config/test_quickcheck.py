"""config/quickcheck.py says "passes" exactly when jsonschema finds no error: over every file of the
corpus at its own schema and at the others, the requests built from the recipes at the submit
level, and thousands of mutations of both (wrong types, quoted numbers, bounds, missing and unknown
keys)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from batchai_cli.config import build_job_request, quickcheck
from batchai_cli.config.document import normalize
from batchai_cli.config.loader import read_source
from batchai_cli.config.schemas import BASE_URL, KINDS, VERSIONS, schema_dir, schema_id, validator
from batchai_cli.errors import BatchAIError

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
CLUSTER_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/gpu"
FILE_SCHEMAS = [schema_id(version, kind) for version in VERSIONS for kind in KINDS]
REPLACEMENTS = [
    "2",
    "0",
    1.5,
    2,
    2.0,
    0,
    -1,
    2**40,
    True,
    False,
    None,
    "",
    "x",
    "P1D",
    "1:00:00",
    [],
    {},
    ["x"],
    {"x": 1},
]


def corpus_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(CORPUS.rglob("*.json")):
        try:
            data = read_source(path).data
        except BatchAIError:
            continue  # kept broken on purpose
        if isinstance(data, dict):
            documents.append((path.relative_to(CORPUS).as_posix(), normalize(data)[0]))
    return documents


DOCUMENTS = corpus_documents()


def jsonschema_passes(url: str, data) -> bool:
    return next(iter(validator(url).iter_errors(data)), None) is None


def agree(url: str, data) -> bool:
    return quickcheck.passes(url, data) == jsonschema_passes(url, data)


def places(data, path=()):
    """Every path into a document (the root excepted)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield (*path, key)
        yield from places(value, (*path, key))


def mutations(data, rng: random.Random, count: int):
    paths = list(places(data))
    for _ in range(count if paths else 0):
        mutated = copy.deepcopy(data)
        path = rng.choice(paths)
        holder = mutated
        for part in path[:-1]:
            holder = holder[part]
        action = rng.random()
        if action < 0.15 and isinstance(holder, dict):
            del holder[path[-1]]
        elif action < 0.25 and isinstance(holder[path[-1]], dict):
            holder[path[-1]]["notInTheSchema"] = 1
        else:
            holder[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        yield mutated


def test_the_corpus_is_here():
    assert len(DOCUMENTS) > 150


@pytest.mark.parametrize("url", FILE_SCHEMAS, ids=lambda url: url.split("/schemas/")[1])
def test_every_corpus_file_gets_jsonschemas_answer(url):
    outcomes = []
    for name, data in DOCUMENTS:
        assert agree(url, data), name
        outcomes.append(jsonschema_passes(url, data))
    assert False in outcomes  # every schema rejects files of the other kinds


def test_mutated_corpus_files_get_jsonschemas_answer():
    rng = random.Random(11)
    outcomes = {True: 0, False: 0}
    for name, data in DOCUMENTS:
        version = next((v for v in VERSIONS if f"/{v}/" in str(data.get("$schema", ""))), "2018-05-01")
        for kind in KINDS:
            url = schema_id(version, kind)
            if not jsonschema_passes(url, data):
                continue
            for mutated in mutations(data, rng, 25):
                assert agree(url, mutated), f"{name}: {json.dumps(mutated)[:2000]}"
                outcomes[jsonschema_passes(url, mutated)] += 1
    assert outcomes[True] > 300 and outcomes[False] > 300, outcomes  # both answers are exercised


def built_requests() -> list[tuple[str, dict]]:
    requests = []
    env = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage", "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for path in sorted((CORPUS / "batchai-recipes").rglob("*job*.json")):
            try:
                request, _ = build_job_request(path, cluster_id=CLUSTER_ID)
            except BatchAIError:
                continue
            requests.append((path.name, request))
    return requests


def test_built_requests_and_their_mutations_get_jsonschemas_answer():
    url = schema_id("2018-05-01", "job", "submit")
    rng = random.Random(5)
    requests = built_requests()
    assert len(requests) > 20
    outcomes = {True: 0, False: 0}
    for name, request in requests:
        assert quickcheck.passes(url, request), name  # a built request passes: the fast path is taken
        for mutated in mutations(request, rng, 25):
            assert agree(url, mutated), f"{name}: {json.dumps(mutated)[:2000]}"
            outcomes[jsonschema_passes(url, mutated)] += 1
    assert outcomes[True] > 100 and outcomes[False] > 100, outcomes


@pytest.mark.parametrize("path", sorted(Path(schema_dir()).glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_keyword_of_our_schemas_is_one_it_decides(path):
    """Else it would always defer to jsonschema, and `job create` would pay for importing it."""
    url = f"{BASE_URL}/{path.parent.name}/{path.name}"
    schema = json.loads(path.read_text(encoding="utf-8"))
    quickcheck._compile(schema, url)
    for name in schema.get("$defs", {}):
        quickcheck._compiled(f"{url}#/$defs/{name}")
    assert quickcheck.passes(url, {}) is jsonschema_passes(url, {})


def test_a_keyword_it_does_not_know_leaves_the_answer_to_jsonschema():
    with pytest.raises(quickcheck._Unsupported):
        quickcheck._compile({"type": "string", "format": "email"}, schema_id("2018-05-01", "job"))
    with pytest.raises(quickcheck._Unsupported):
        quickcheck._compile({"enum": [{"a": 1}]}, schema_id("2018-05-01", "job"))
    with pytest.raises(quickcheck._Unsupported):
        quickcheck._compiled("https://example.com/other.json")


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"type": "integer"}, 2.0, True),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"enum": [1]}, True, False),
        ({"enum": [1]}, 1.0, True),
        ({"enum": [True]}, 1, False),
        ({"enum": [None]}, None, True),
        ({"const": "a"}, "a", True),
        ({"minimum": 1}, 1, True),
        ({"exclusiveMinimum": 1}, 1, False),
        ({"maximum": 1}, True, True),  # a boolean is not a number: bounds do not apply
        ({"minLength": 2}, "é", False),
        ({"pattern": "b"}, "abc", True),  # search, not match
        ({"additionalProperties": False, "patternProperties": {"^x": True}}, {"xy": 1}, True),
        ({"additionalProperties": False, "patternProperties": {"^x": True}}, {"y": 1}, False),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": False}, {"a": 1}, False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"c": 1}, True),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, False),
        ({"items": {"type": "string"}, "maxItems": 1}, ["a", "b"], False),
    ],
)
def test_keywords_as_jsonschema_applies_them(schema, value, expected):
    from jsonschema import Draft202012Validator

    assert Draft202012Validator(schema).is_valid(value) is expected
    assert quickcheck._compile(schema, schema_id("2018-05-01", "job"))(value) is expected
