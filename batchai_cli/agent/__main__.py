"""`python -m batchai_cli.agent run <job-id> <task-index> <node-index> <bundle>`: started by a job's
runner; everything else the agent needs is in the job's bundle folder.

`python -m batchai_cli.agent run-slurm <job-id> <bundle>`: the same, as a task of the job's srun
step, with the task and node from Slurm ($SLURM_PROCID, $SLURMD_NODENAME).

`python -m batchai_cli.agent recover <job-id> <task-index> <node-id> <bundle>`: ship what a dead
agent left in its node's spool (agent/recover.py).

`exec`, `exec-node`, `rsh`, `orted` and `connect`: commands beside a job on a node (agent/shell.py).
"""

import sys

from batchai_cli.agent.node import main, main_slurm
from batchai_cli.agent.shell import main as shell_main

USAGE = (
    "usage: python -m batchai_cli.agent run <job-id> <task-index> <node-index> <bundle> | run-slurm <job-id> <bundle>"
)

if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "run":
        sys.exit(main(sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "run-slurm":
        sys.exit(main_slurm(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 6 and sys.argv[1] == "recover":
        from batchai_cli import private
        from batchai_cli.agent.recover import recover

        private.enter()
        sys.exit(recover(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
    if len(sys.argv) > 1 and sys.argv[1] in ("exec", "exec-node", "rsh", "orted", "connect"):
        sys.exit(shell_main(sys.argv[1], sys.argv[2:]))
    sys.exit(USAGE)
