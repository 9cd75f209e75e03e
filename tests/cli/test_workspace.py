"""`batchai workspace`: whole outputs, az's messages and exit codes, in an isolated $BATCHAI_HOME."""

from __future__ import annotations

import json

from tests.helpers import SUBSCRIPTION, normalize

WS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"


def test_create_prints_the_workspace_as_az_does(batchai):
    result = batchai("workspace", "create", "-g", "rg", "-n", "ws", "-l", "East US")
    assert result.code == 0, result.err
    assert result.err == ""
    assert normalize(result.out) == (
        "{\n"
        '  "creationTime": "<TIME>",\n'
        f'  "id": "{WS_ID}",\n'
        '  "location": "eastus",\n'
        '  "name": "ws",\n'
        '  "provisioningState": "succeeded",\n'
        '  "provisioningStateTransitionTime": "<TIME>",\n'
        '  "resourceGroup": "rg",\n'
        '  "tags": null,\n'
        '  "type": "Microsoft.BatchAI/workspaces"\n'
        "}\n"
    )


def test_location_defaults_to_the_groups_other_workspaces_then_local(batchai):
    assert batchai("workspace", "create", "-g", "rg", "-n", "first").json()["location"] == "local"
    batchai("workspace", "create", "-g", "rg2", "-n", "a", "-l", "westeurope")
    assert batchai("workspace", "create", "-g", "rg2", "-n", "b").json()["location"] == "westeurope"


def test_table_show_and_list(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus")
    batchai("workspace", "create", "-g", "other-group", "-n", "second-workspace", "-l", "westus2")
    table = batchai("workspace", "list", "-o", "table")
    assert table.code == 0
    assert table.out == (
        "Name              Resource Group  Location  State\n"
        "----------------  --------------  --------  ---------\n"
        "ws                rg              eastus    succeeded\n"
        "second-workspace  other-group     westus2   succeeded\n"
    )
    assert batchai("workspace", "list", "-g", "rg", "--query", "[].name", "-o", "tsv").out == "ws\n"
    assert batchai("workspace", "show", "-g", "rg", "-n", "ws", "-o", "table").out == (
        "Name  Resource Group  Location  State\n"
        "----  --------------  --------  ---------\n"
        "ws    rg              eastus    succeeded\n"
    )


def test_list_of_nothing_is_an_empty_list(batchai):
    assert batchai("workspace", "list").out == "[]\n"
    assert batchai("workspace", "list", "-o", "table").out == ""


def test_names_are_case_insensitive_like_arm(batchai):
    batchai("workspace", "create", "-g", "RG", "-n", "MyWs")
    shown = batchai("workspace", "show", "-g", "rg", "-n", "myws")
    assert shown.code == 0
    assert shown.json()["name"] == "MyWs"
    again = batchai("workspace", "create", "-g", "rg", "-n", "MYWS")
    assert again.code == 1
    assert again.err == (
        'ERROR: A workspace named "MYWS" already exists in resource group "rg". '
        "Use it as it is (batchai workspace show -g rg -n MYWS) or choose another name.\n"
    )


def test_show_missing_exits_3(batchai):
    result = batchai("workspace", "show", "-g", "rg", "-n", "nope")
    assert result.code == 3
    assert result.out == ""
    assert result.err == (
        'ERROR: The workspace "nope" was not found in resource group "rg". '
        "See what exists with 'batchai workspace list -g rg'.\n"
    )


def test_show_by_ids(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    batchai("workspace", "create", "-g", "rg", "-n", "ws2")
    one = batchai("workspace", "show", "--ids", WS_ID)
    assert one.json()["id"] == WS_ID
    both = batchai("workspace", "show", "--ids", f"{WS_ID} {WS_ID}2")
    assert [w["name"] for w in both.json()] == ["ws", "ws2"]
    wrong_kind = batchai("workspace", "show", "--ids", WS_ID + "/experiments/e")
    assert wrong_kind.code == 2
    assert "is the id of a experiment, not of a workspace" in wrong_kind.err or "not of a workspace" in wrong_kind.err
    garbage = batchai("workspace", "show", "--ids", "/subscriptions/x/nope")
    assert garbage.code == 2
    assert garbage.err.startswith("ERROR: '/subscriptions/x/nope' is not a valid Batch AI resource id.")


def test_name_or_ids_required(batchai):
    result = batchai("workspace", "show", "-g", "rg")
    assert (result.code, result.err) == (2, "ERROR: (--workspace | --ids) are required\n")
    result = batchai("workspace", "show", "-n", "ws")
    assert result.code == 2
    assert result.err == (
        "ERROR: (--resource-group | --ids) are required (or set a default: batchai configure --defaults "
        "group=<name>).\n"
    )


def test_missing_required_option_is_a_usage_error(batchai):
    result = batchai("workspace", "create", "-n", "ws")
    assert result.code == 2
    assert result.err.startswith("ERROR: the following arguments are required: --resource-group/-g")


def test_invalid_names_are_refused_before_anything_is_written(batchai, home):
    for name in ("has space", "x" * 65, "dots.not.allowed", "é"):
        result = batchai("workspace", "create", "-g", "rg", "-n", name)
        assert result.code == 2, name
        assert result.err == (
            f"ERROR: Invalid workspace name '{name}'. Names are 1-64 characters: letters, digits, '-' and '_'.\n"
        )
    assert batchai("workspace", "create", "-g", "rg", "-n", "x" * 64).code == 0
    bad_group = batchai("workspace", "create", "-g", "bad/group", "-n", "ws")
    assert bad_group.code == 2
    assert bad_group.err.startswith("ERROR: Invalid resource group name 'bad/group'.")
    assert [w["name"] for w in batchai("workspace", "list").json()] == ["x" * 64]


def test_delete_refuses_without_a_tty_and_keeps_the_workspace(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    result = batchai("workspace", "delete", "-g", "rg", "-n", "ws")
    assert (result.code, result.out) == (1, "")
    assert result.err == "ERROR: Unable to prompt for confirmation as no tty available. Use --yes.\n"
    assert batchai("workspace", "show", "-g", "rg", "-n", "ws").code == 0


def test_delete_with_yes(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    result = batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert batchai("workspace", "show", "-g", "rg", "-n", "ws").code == 3
    again = batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y", "--no-wait")
    assert again.code == 3


def test_delete_of_a_workspace_with_experiments_names_them(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "e2")
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "e1")
    result = batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y")
    assert result.code == 1
    assert result.err == (
        'ERROR: The workspace "ws" still holds experiment "e1", experiment "e2". '
        "Delete them first, or pass --force to delete the workspace with everything in it.\n"
    )
    forced = batchai("workspace", "delete", "-g", "rg", "-n", "ws", "-y", "--force")
    assert forced.code == 0
    assert batchai("workspace", "list").json() == []
    # Nothing of the old workspace is left behind to reappear under a new one of the same name.
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    assert batchai("experiment", "list", "-g", "rg", "-w", "ws").json() == []


def test_output_formats(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus")
    yaml_out = normalize(batchai("workspace", "show", "-g", "rg", "-n", "ws", "-o", "yaml").out)
    assert yaml_out == (
        "creationTime: '<TIME>'\n"
        f"id: {WS_ID}\n"
        "location: eastus\n"
        "name: ws\n"
        "provisioningState: succeeded\n"
        "provisioningStateTransitionTime: '<TIME>'\n"
        "resourceGroup: rg\n"
        "tags: null\n"
        "type: Microsoft.BatchAI/workspaces\n"
    )
    tsv = normalize(batchai("workspace", "show", "-g", "rg", "-n", "ws", "-o", "tsv").out)
    assert tsv == f"<TIME>\t{WS_ID}\teastus\tws\tsucceeded\t<TIME>\trg\t\tMicrosoft.BatchAI/workspaces\n"
    assert batchai("workspace", "show", "-g", "rg", "-n", "ws", "-o", "none").out == ""
    # jsonc is plain JSON when stdout is not a terminal.
    jsonc = batchai("workspace", "show", "-g", "rg", "-n", "ws", "-o", "jsonc")
    assert json.loads(jsonc.out)["name"] == "ws"


def test_query_reshapes_before_formatting(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus")
    batchai("workspace", "create", "-g", "rg", "-n", "ws2", "-l", "westus")
    result = batchai("workspace", "list", "--query", "[].{n:name, where:location}", "-o", "table")
    assert result.out == "N    Where\n---  ------\nws   eastus\nws2  westus\n"
    assert batchai("workspace", "list", "--query", "length(@)").out == "2\n"
    bad = batchai("workspace", "list", "--query", "[?name==")
    assert bad.code == 2
    assert bad.err.startswith("ERROR: argument --query: invalid JMESPath query '[?name=='")


def test_unknown_output_format_is_a_usage_error(batchai):
    result = batchai("workspace", "list", "-o", "xml")
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("ERROR: Invalid value for '-o' / '--output': 'xml' is not one of")


def test_global_options_before_the_group_name(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    result = batchai("-o", "tsv", "--query", "[].name", "workspace", "list")
    assert (result.code, result.out) == (0, "ws\n")


def test_verbose_reports_the_chosen_location(batchai):
    result = batchai("workspace", "create", "-g", "rg", "-n", "ws", "--verbose", "-o", "none")
    assert result.err == "INFO: Using location 'local' for workspace 'ws'.\n"
    quiet = batchai("workspace", "create", "-g", "rg", "-n", "ws2", "-o", "none")
    assert quiet.err == ""
