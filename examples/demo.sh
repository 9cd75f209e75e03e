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
step batchai job create -n train -c local -f examples/local/job.json -o table
step batchai job wait -n train
step batchai job show -n train -o table
step batchai cluster show -n local -o table

segment=$(batchai job show -n train --query jobOutputDirectoryPathSegment -o tsv)
storage="demo-output/storage/$segment"
printf '\n\033[1mThe job wrote (a local folder standing in for Azure storage):\033[0m\n' >&2
(cd "$storage" && find . -type f | sort) >&2
printf '\n\033[1m%s/stdouterr/stdout.txt:\033[0m\n' "$storage" >&2
cat "$storage/stdouterr/stdout.txt"
printf '\n\033[1m%s/outputs/model/model.json:\033[0m\n' "$storage" >&2
cat "$storage/outputs/model/model.json"
printf '\n\nThe demo state is in %s (BATCHAI_HOME).\n' "$BATCHAI_HOME" >&2
