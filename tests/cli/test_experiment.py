"""`batchai experiment`: whole outputs, defaults, and az's messages."""

from __future__ import annotations

from tests.helpers import SUBSCRIPTION, normalize

EXP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/experiments/exp1"


def test_create_show_list_delete(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    created = batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp1")
    assert created.code == 0, created.err
    assert normalize(created.out) == (
        "{\n"
        '  "creationTime": "<TIME>",\n'
        f'  "id": "{EXP_ID}",\n'
        '  "name": "exp1",\n'
        '  "provisioningState": "succeeded",\n'
        '  "provisioningStateTransitionTime": "<TIME>",\n'
        '  "resourceGroup": "rg",\n'
        '  "type": "Microsoft.BatchAI/workspaces/experiments"\n'
        "}\n"
    )
    assert batchai("experiment", "show", "--ids", EXP_ID).out == created.out
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp2")
    assert batchai("experiment", "list", "-g", "rg", "-w", "ws", "-o", "table").out == (
        "Name  Resource Group  Workspace  State\n"
        "----  --------------  ---------  ---------\n"
        "exp1  rg              ws         succeeded\n"
        "exp2  rg              ws         succeeded\n"
    )
    assert batchai("experiment", "delete", "--ids", EXP_ID, "-y").code == 0
    assert batchai("experiment", "list", "-g", "rg", "-w", "ws", "--query", "[].name", "-o", "tsv").out == "exp2\n"


def test_experiment_in_a_missing_workspace(batchai):
    result = batchai("experiment", "create", "-g", "rg", "-w", "nows", "-n", "e")
    assert result.code == 3
    assert result.err == (
        'ERROR: The workspace "nows" was not found in resource group "rg". '
        "See what exists with 'batchai workspace list -g rg'.\n"
    )
    listing = batchai("experiment", "list", "-g", "rg", "-w", "nows")
    assert listing.code == 3


def test_missing_experiment(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    result = batchai("experiment", "show", "-g", "rg", "-w", "ws", "-n", "nope")
    assert result.code == 3
    assert result.err == (
        'ERROR: The experiment "nope" was not found in workspace "ws" (resource group "rg"). '
        "See what exists with 'batchai experiment list -g rg -w ws'.\n"
    )


def test_duplicate_experiment(batchai):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "e")
    result = batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "E")
    assert result.code == 1
    assert result.err == (
        'ERROR: An experiment named "E" already exists in workspace "ws" (resource group "rg"). '
        "Choose another name, or delete the existing experiment first.\n"
    )


def test_defaults_fill_options_and_the_command_line_wins(batchai, monkeypatch):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    batchai("workspace", "create", "-g", "rg", "-n", "other")
    assert batchai("configure", "--defaults", "group=rg", "workspace=ws").code == 0
    assert batchai("experiment", "create", "-n", "e1").code == 0
    assert batchai("experiment", "create", "-w", "other", "-n", "e2").code == 0
    assert batchai("experiment", "list", "--query", "[].name", "-o", "tsv").out == "e1\n"
    assert batchai("experiment", "list", "-w", "other", "--query", "[].name", "-o", "tsv").out == "e2\n"
    monkeypatch.setenv("BATCHAI_DEFAULTS_WORKSPACE", "other")
    assert batchai("experiment", "list", "--query", "[].name", "-o", "tsv").out == "e2\n"


def test_missing_workspace_option_hints_at_defaults(batchai):
    result = batchai("experiment", "list", "-g", "rg")
    assert result.code == 2
    assert result.err == (
        "ERROR: the following arguments are required: --workspace/-w "
        "(or set a default: batchai configure --defaults workspace=<name>).\n"
    )
