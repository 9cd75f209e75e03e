"""The node agent: runs on every node of a job (DESIGN.md). For task index i it prepares the node's
job folder and mount root, puts the volumes in place, sets every AZ_BATCHAI_* variable, runs the job
preparation and then the toolkit's processes, ships stdout/stderr to storage while they run, uploads
staged outputs, and records the node's result where the job's runner reads it.

    python -m batchai_cli.agent run <job-id> <task-index> <node-index>
"""
