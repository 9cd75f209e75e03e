"""`python -m batchai_cli.agent run <job-id> <task-index> <node-index>`: started by a job's runner."""

import sys

from batchai_cli.agent.node import main

if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "run":
        sys.exit("usage: python -m batchai_cli.agent run <job-id> <task-index> <node-index>")
    sys.exit(main(sys.argv[2:]))
