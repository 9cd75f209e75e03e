#!/usr/bin/env bash
# A recipe-style job.json against Azurite, the Azure Storage emulator: the blob container is
# mounted (staged) at $AZ_BATCHAI_JOB_MOUNT_ROOT/bfs, the script comes from it, and stdout/stderr
# and the model go back to it. `make demo-azurite` runs this; it needs Node.js/npm for Azurite.
set -euo pipefail
cd "$(dirname "$0")/../.."

export BATCHAI_HOME="$PWD/demo-output/azurite-home"
rm -rf "$BATCHAI_HOME" demo-output/azurite
mkdir -p demo-output/azurite

azurite=.test-services/azurite/node_modules/.bin/azurite-blob
if [ ! -x "$azurite" ]; then
  npm install --no-audit --no-fund --prefix .test-services/azurite azurite@3.35.0 >&2
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$azurite" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence --skipApiVersionCheck --loose --silent \
  --disableTelemetry >demo-output/azurite/azurite.log 2>&1 &
azurite_pid=$!
trap 'kill $azurite_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/devstoreaccount1?comp=list" && break
  kill -0 $azurite_pid 2>/dev/null || { cat demo-output/azurite/azurite.log >&2; exit 1; }
  sleep 0.1
done

# Azurite's published development account and key (not a secret). The placeholders in job.json
# are filled from these two variables, as az batchai did.
export AZURE_BATCHAI_STORAGE_ACCOUNT=devstoreaccount1
export AZURE_BATCHAI_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# The endpoint of that account: the emulator instead of blob.core.windows.net.
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURE_BATCHAI_STORAGE_KEY;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

step batchai storage container create -n batchaisample -o none
step batchai storage blob upload-batch -s examples/local -d batchaisample --destination-path scripts --pattern '*.py' -o table
step batchai workspace create -g demo-rg -n demo-ws -o none
step batchai experiment create -g demo-rg -w demo-ws -n recipes -o none
step batchai cluster create -g demo-rg -w demo-ws -n nc6 -s Standard_NC6 -t 1 -u demo -p 'demo-Passw0rd' -o none
# stdout streams from the blob container (append blobs) while the job runs.
step batchai job create -g demo-rg -w demo-ws -e recipes -n train -c nc6 -f examples/azurite/job.json --stream --wait
step batchai job file list -g demo-rg -w demo-ws -e recipes -j train -d MODEL -o table
step batchai job file download -g demo-rg -w demo-ws -e recipes -j train -d MODEL --dest demo-output/azurite/model \
  -o none
printf '\n\033[1mthe model, downloaded from the container:\033[0m\n' >&2
cat demo-output/azurite/model/model.json
echo
