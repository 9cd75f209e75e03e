#!/usr/bin/env bash
# Installs what the test suite needs that pip does not bring: Debian packages (through apt-get as
# root, or sudo when it needs no password) and Azurite (through npm, into .test-services/).
# `make test` runs it first. The second time it only checks (a `command -v` per program), installs
# nothing and prints one line. Where it cannot install, it prints the exact command and exits 1,
# before any test runs.
set -uo pipefail
cd "$(dirname "$0")/.."

# program  package  why (the README's set-up paragraph lists the same)
requirements=(
  "mpirun         openmpi-bin      MPI toolkits (customMpi, horovod, cntk...)"
  "podman         podman           jobs with containerSettings"
  "runc           runc             the OCI runtime podman uses here"
  "busybox        busybox-static   the test container image, built locally"
  "slurmctld      slurm-wlm        the Slurm engine's tests (slurmctld and two slurmd)"
  "munged         munge            Slurm's authentication"
  "ssh-keygen     openssh-client   cluster create --generate-ssh-keys"
  "smbd           samba            an SMB 3 server for the Azure File share mounts (rclone's smb backend)"
  "fusermount3    fuse3            FUSE mounts of Blob containers and File shares (rclone mount)"
  "chromium       chromium         the portal's tests in a headless browser"
  "chromedriver   chromium-driver  the portal's tests in a headless browser"
)
azurite_version=3.35.0 # the last release that runs on Node 20
azurite_bin=.test-services/azurite/node_modules/.bin/azurite

search_path="$PATH:/usr/sbin:/sbin"
missing=()
for line in "${requirements[@]}"; do
  read -r program package _ <<<"$line"
  PATH="$search_path" command -v "$program" >/dev/null 2>&1 || missing+=("$package")
done

installed=()
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: missing ${missing[*]}, and this machine has no apt-get: install them (Debian names) and run make test again" >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "test-deps: missing ${missing[*]}; run this, then make test again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -q >"$log" 2>&1 &&
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
    tail -n 20 "$log" >&2
    echo "test-deps: apt-get could not install ${missing[*]} (its last lines above); the command was:" >&2
    echo "  ${sudo[*]}${sudo:+ }apt-get install -y --no-install-recommends ${missing[*]}" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  installed+=("${missing[@]}")
fi

if [ ! -x "$azurite_bin" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "test-deps: Azurite needs npm (Node.js 20 or newer): apt-get install -y nodejs npm, then make test again" >&2
    exit 1
  fi
  log=$(mktemp)
  if ! npm install --no-audit --no-fund --prefix .test-services/azurite "azurite@$azurite_version" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "test-deps: npm could not install Azurite (its last lines above); the command was:" >&2
    echo "  npm install --prefix .test-services/azurite azurite@$azurite_version" >&2
    exit 1
  fi
  rm -f "$log"
  installed+=("azurite@$azurite_version")
fi

# Samba serves Azure File shares as the storage account's user: Azurite's and the Files emulator's.
samba_user=devstoreaccount1
if ! id "$samba_user" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    useradd_cmd=(useradd)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    useradd_cmd=(sudo -n useradd)
  else
    echo "test-deps: Samba needs a Unix user $samba_user; run this, then make test again:" >&2
    echo "  sudo useradd -M -s /usr/sbin/nologin $samba_user" >&2
    exit 1
  fi
  PATH="$search_path" "${useradd_cmd[@]}" -M -s /usr/sbin/nologin "$samba_user" || exit 1
  installed+=("user $samba_user")
fi

if [ ${#installed[@]} -gt 0 ]; then
  echo "test-deps: installed ${installed[*]}"
else
  echo "test-deps: everything the tests need is here (${#requirements[@]} programs, azurite@$azurite_version)"
fi
