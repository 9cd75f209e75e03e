"""`python -m batchai_cli.agent run <job-id> <task-index> <node-index>`: started by a job's runner.

`python -m batchai_cli.agent run-slurm <job-id>`: the same, as a task of the job's srun step, with
the task and node from Slurm ($SLURM_PROCID, $SLURM_NODEID, $SLURMD_NODENAME).
"""

import sys

from batchai_cli.agent.node import main, main_slurm

USAGE = "usage: python -m batchai_cli.agent run <job-id> <task-index> <node-index> | run-slurm <job-id>"

if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        sys.exit(main(sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "run-slurm":
        sys.exit(main_slurm(sys.argv[2]))
    sys.exit(USAGE)
