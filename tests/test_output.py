"""output.py: az's formats, independent of any resource type."""

from __future__ import annotations

import pytest

from batchai_cli.errors import UsageError
from batchai_cli.output import colorize_json, format_table, render

JOB = {
    "name": "job1",
    "id": "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.BatchAI/workspaces/ws/experiments/e/jobs/job1",
    "cluster": {"id": "/subscriptions/s/resourceGroups/rg2/providers/Microsoft.BatchAI/workspaces/w2/clusters/c"},
    "nodeCount": 2,
    "ok": True,
    "missing": None,
}


def test_json_is_sorted_with_resource_groups_added_at_every_level():
    text = render(JOB, "json")
    assert text.index('"cluster"') < text.index('"id"') < text.index('"name"')
    data = __import__("json").loads(text)
    assert data["resourceGroup"] == "rg1"
    assert data["cluster"]["resourceGroup"] == "rg2"


def test_none_result_prints_nothing():
    assert render(None, "json") == ""
    assert render(None, "table") == ""


def test_table_aligns_text_left_and_numbers_right():
    rows = [{"Name": "a", "Nodes": 1}, {"Name": "longer", "Nodes": 12}]
    assert format_table(rows) == "Name    Nodes\n------  -----\na           1\nlonger     12\n"


def test_auto_table_keeps_scalars_and_skips_ids():
    assert render(JOB, "table") == (
        "Name  NodeCount  Ok    ResourceGroup\n----  ---------  ----  -------------\njob1          2  True  rg1\n"
    )


def test_tsv_follows_az():
    # Sorted keys; nested objects left out; null is empty; booleans lower case.
    assert render([JOB], "tsv") == f"{JOB['id']}\t\tjob1\t2\ttrue\trg1\n"
    assert render(["a", "b"], "tsv") == "a\nb\n"
    assert render(3, "tsv") == "3\n"


def test_query_then_format():
    assert render([JOB], "json", query="[0].cluster.resourceGroup") == '"rg2"\n'
    with pytest.raises(UsageError):
        render([JOB], "json", query="[?")


def test_query_result_of_null_prints_null():
    assert render({"a": 1}, "json", query="b") == "null\n"


def test_jsonc_colors_keys_strings_numbers_and_literals():
    colored = colorize_json('{\n  "a": "x",\n  "b": 1.5,\n  "c": null\n}')
    assert '\x1b[94m"a"\x1b[0m: \x1b[32m"x"\x1b[0m' in colored
    assert "\x1b[36m1.5\x1b[0m" in colored
    assert "\x1b[95mnull\x1b[0m" in colored
    assert render({"a": "x"}, "jsonc", color=False) == '{\n  "a": "x"\n}\n'


def test_unicode_is_kept():
    assert render({"name": "données"}, "json") == '{\n  "name": "données"\n}\n'
