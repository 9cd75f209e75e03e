#!/usr/bin/env bash
# The README's demo: runs on a fresh machine with no Azure account. `make demo` calls it with
# the project's .venv on PATH. Everything it makes lives in demo-output/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

export BATCHAI_HOME="$PWD/demo-output/home"
rm -rf demo-output
mkdir -p demo-output

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

step batchai workspace create -g demo-rg -n demo-ws -l eastus -o table
step batchai configure --defaults group=demo-rg workspace=demo-ws experiment=demo-exp
step batchai experiment create -n demo-exp -o table
# A local cluster: two nodes that are slots on this machine. (-p: az insists on an admin account.)
step batchai cluster create -n local -s Standard_NC6 -t 2 -u demo -p 'demo-Passw0rd' -o table
# --stream follows the job's stdout as it runs; --wait ends with the job's own exit code.
step batchai job create -n train -c local -f examples/local/job.json --stream --wait
step batchai job show -n train -o table
step batchai job file list -j train -o table
step batchai job file list -j train -d MODEL -o table
step batchai job file download -j train -d MODEL --dest demo-output/model -o none
step cat demo-output/model/model.json
echo
step batchai cluster show -n local -o table
printf '\nThe job wrote to demo-output/storage/ (a local folder standing in for Azure storage);\n' >&2
printf 'the demo state is in %s (BATCHAI_HOME).\n' "$BATCHAI_HOME" >&2
