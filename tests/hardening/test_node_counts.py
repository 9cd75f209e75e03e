"""Item 7: one limit on node counts everywhere (config.nodes.MAX_NODE_COUNT, Batch AI's int32), and
showing a cluster costs nothing for nodes that no job fills."""

from __future__ import annotations

from batchai_cli.config.nodes import MAX_NODE_COUNT
from tests.helpers import run_process

G = ("-g", "rg", "-w", "ws")


def test_resize_and_auto_scale_refuse_more_than_the_limit(lab):
    resized = lab.batchai("cluster", "resize", *G, "-n", "c", "-t", "99999999999999999999")
    assert resized.code == 2
    assert resized.err == f"ERROR: --target must be from 0 to {MAX_NODE_COUNT}, not 99999999999999999999.\n"
    scaled = lab.batchai("cluster", "auto-scale", *G, "-n", "c", "--min", "0", "--max", str(MAX_NODE_COUNT + 1))
    assert scaled.code == 2
    assert scaled.err == f"ERROR: --min and --max must be from 0 to {MAX_NODE_COUNT}.\n"
    created = lab.create_cluster("big", MAX_NODE_COUNT + 1)
    assert created.code != 0
    assert str(MAX_NODE_COUNT) in created.err


def test_a_cluster_at_the_limit_shows_and_lists_at_once(lab):
    assert lab.batchai("cluster", "resize", *G, "-n", "c", "-t", str(MAX_NODE_COUNT), "-o", "none").code == 0
    # A separate process with a bound: before, show counted every node one by one (about ten minutes).
    shown = run_process("cluster", "show", *G, "-n", "c", "--query", "nodeStateCounts.idleNodeCount", timeout=30)
    assert shown.code == 0, shown.err
    assert shown.out == f"{MAX_NODE_COUNT}\n"
    listed = run_process("cluster", "list", *G, "--query", "[].currentNodeCount", "-o", "tsv", timeout=30)
    assert listed.out == f"{MAX_NODE_COUNT}\n"
