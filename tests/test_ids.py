"""ARM-style ids and the Batch AI name rules."""

from __future__ import annotations

import pytest

from batchai_cli import ids
from batchai_cli.errors import UsageError

JOB = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/experiments/e/jobs/j"


def test_round_trip_and_navigation():
    rid = ids.parse(JOB)
    assert str(rid) == JOB
    assert (rid.kind, rid.name, rid.get("experiment"), rid.resource_group) == ("job", "j", "e", "rg")
    assert str(rid.parent.parent) == JOB.split("/experiments")[0]
    assert rid.type == "Microsoft.BatchAI/workspaces/experiments/jobs"


def test_parsing_is_case_insensitive_on_segments_and_keys_are_lowercase():
    rid = ids.parse(JOB.replace("resourceGroups", "resourcegroups").replace("Microsoft.BatchAI", "microsoft.batchai"))
    assert rid.key == JOB.lower()
    assert (
        ids.parse("/subscriptions/s/resourceGroups/r/providers/Microsoft.BatchAI/workspaces/w/fileservers/f").kind
        == "file-server"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/subscriptions/s",
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v",
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.BatchAI/workspaces/w/jobs/j",
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.BatchAI/workspaces/bad name",
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.BatchAI/workspaces/w/experiments",
    ],
)
def test_bad_ids(bad):
    with pytest.raises(UsageError):
        ids.parse(bad)


def test_expected_kind():
    with pytest.raises(UsageError, match="is the id of a job, not of a cluster"):
        ids.parse(JOB, expect="cluster")


@pytest.mark.parametrize(
    "name,ok",
    [
        ("a", True),
        ("A-b_9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("a.b", False),
        ("a b", False),
        ("ü", False),
    ],
)
def test_name_rule(name, ok):
    if ok:
        assert ids.check_name(name) == name
    else:
        with pytest.raises(UsageError):
            ids.check_name(name)


def test_resource_group_rule_allows_dots_and_parentheses():
    assert ids.check_resource_group("batchai.recipes") == "batchai.recipes"
    assert ids.check_resource_group("rg(1)") == "rg(1)"
    with pytest.raises(UsageError):
        ids.check_resource_group("ends.")
