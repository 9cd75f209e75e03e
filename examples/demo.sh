#!/usr/bin/env bash
# The README's demo: runs on a fresh machine with no Azure account. `make demo` calls it with
# the project's .venv on PATH. Everything it makes lives in demo-output/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

export BATCHAI_HOME="$PWD/demo-output/home"
rm -rf demo-output
mkdir -p demo-output

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

step batchai --version
step batchai workspace create -g demo-rg -n demo-ws -l eastus -o table
step batchai configure --defaults group=demo-rg workspace=demo-ws
step batchai experiment create -n exp1 -o table
step batchai experiment list -o table
step batchai workspace show --query "{name: name, id: id}"

printf '\nThe demo state is in %s (BATCHAI_HOME).\n' "$BATCHAI_HOME" >&2
