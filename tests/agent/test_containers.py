"""Container runtimes: the exact command lines, runtime choice and its error, and real runs under podman."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from batchai_cli.agent.containers import (
    ApptainerRuntime,
    DockerRuntime,
    PodmanRuntime,
    effective_image,
    find_runtime,
    registry_credentials,
    require_runtime,
)
from batchai_cli.errors import BatchAIError, UsageError

SECRET = "s3cr3t-Pa55"
JOB_ENV = {"AZ_BATCHAI_JOB_MOUNT_ROOT": "/mnt/batch/job", "GREETING": "hello", "API_TOKEN": SECRET}
MOUNTS = [("/mnt/batch/job", "/mnt/batch/job"), ("/data/in", "/data/in")]


def run_args(**changes):
    args = {
        "mounts": MOUNTS,
        "env": JOB_ENV,
        "workdir": "/mnt/batch/job/wd",
        "shm_size": "16gb",
        "name": "batchai-job1-0",
    }
    return {**args, **changes}


@pytest.fixture(autouse=True)
def no_forced_runtime(monkeypatch):
    monkeypatch.delenv("BATCHAI_CONTAINER_RUNTIME", raising=False)


def fake_program(folder: Path, name: str, script: str) -> str:
    """An executable shell script standing in for a runtime's command line; it logs its arguments."""
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/{name}.log"\n{script}\n')
    path.chmod(0o755)
    return str(path)


# --- run commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime_class", [DockerRuntime, PodmanRuntime])
def test_docker_and_podman_run_command(runtime_class):
    runtime = runtime_class(f"/usr/bin/{runtime_class.name}")
    argv = runtime.run_command(
        "demo.azurecr.io/train:1", ["bash", "-c", "python $AZ_BATCHAI_JOB_MOUNT_ROOT/t.py"], **run_args()
    )
    assert argv == [
        f"/usr/bin/{runtime_class.name}",
        "run",
        "--rm",
        "--name",
        "batchai-job1-0",
        "--network",
        "host",
        "--shm-size",
        "16gb",
        "--volume",
        "/mnt/batch/job:/mnt/batch/job",
        "--volume",
        "/data/in:/data/in",
        "--env",
        "AZ_BATCHAI_JOB_MOUNT_ROOT",
        "--env",
        "GREETING",
        "--env",
        "API_TOKEN",
        "--workdir",
        "/mnt/batch/job/wd",
        "demo.azurecr.io/train:1",
        "bash",
        "-c",
        "python $AZ_BATCHAI_JOB_MOUNT_ROOT/t.py",
    ]
    assert runtime.kill_command("batchai-job1-0") == [f"/usr/bin/{runtime_class.name}", "kill", "batchai-job1-0"]
    assert runtime.run_notes(shm_size="16gb") == []


def test_docker_run_command_without_optional_settings():
    argv = DockerRuntime("/usr/bin/docker").run_command(
        "ubuntu", ["true"], mounts=[], env={}, workdir=None, shm_size=None, name="n"
    )
    assert argv == ["/usr/bin/docker", "run", "--rm", "--name", "n", "--network", "host", "ubuntu", "true"]


def test_apptainer_run_command():
    runtime = ApptainerRuntime("/usr/bin/apptainer")
    argv = runtime.run_command("microsoft/cntk:2.1", ["bash", "-c", "echo $GREETING"], **run_args())
    # apptainer passes the process environment through and shares the host network and /dev/shm
    assert argv == [
        "/usr/bin/apptainer",
        "exec",
        "--bind",
        "/mnt/batch/job:/mnt/batch/job",
        "--bind",
        "/data/in:/data/in",
        "--pwd",
        "/mnt/batch/job/wd",
        "docker://microsoft/cntk:2.1",
        "bash",
        "-c",
        "echo $GREETING",
    ]
    assert runtime.kill_command("batchai-job1-0") is None
    assert runtime.run_notes(shm_size="16gb") == [
        'containerSettings.shmSize "16gb" is ignored: apptainer containers share the node\'s /dev/shm.'
    ]
    assert runtime.run_notes(shm_size=None) == []


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("/images/train.sif", "/images/train.sif"),
        ("train.sif", "train.sif"),
        ("docker://ubuntu:22.04", "docker://ubuntu:22.04"),
        ("oras://demo.azurecr.io/train:1", "oras://demo.azurecr.io/train:1"),
        ("demo.azurecr.io/train:1", "docker://demo.azurecr.io/train:1"),
    ],
)
def test_apptainer_image_reference(image, reference):
    assert ApptainerRuntime("apptainer").run_command(
        image, ["true"], mounts=[], env={}, workdir=None, shm_size=None, name="n"
    ) == ["apptainer", "exec", reference, "true"]


@pytest.mark.parametrize("runtime_class", [DockerRuntime, PodmanRuntime, ApptainerRuntime])
def test_secret_values_never_reach_the_command_line(runtime_class):
    argv = runtime_class("rt").run_command("img", ["sh"], **run_args())
    assert not [arg for arg in argv if SECRET in arg or "=" in arg]


@pytest.mark.parametrize("runtime_class", [DockerRuntime, PodmanRuntime, ApptainerRuntime])
def test_a_variable_name_with_a_value_is_refused(runtime_class):
    with pytest.raises(BatchAIError) as raised:
        runtime_class("rt").run_command("img", ["sh"], **run_args(env={"TOKEN=abc": "x"}))
    assert str(raised.value) == (
        '"TOKEN=abc" is not an environment variable name. Names may not be empty or contain "=".'
    )


def test_mount_paths_with_a_separator_are_refused():
    with pytest.raises(BatchAIError) as raised:
        DockerRuntime("docker").run_command("img", ["sh"], **run_args(mounts=[("/a:b", "/a:b")]))
    assert str(raised.value) == (
        'The path "/a:b" cannot be mounted into a container: it contains ":". '
        "Rename the folder, or run with --no-container."
    )
    with pytest.raises(BatchAIError, match='it contains ","'):
        ApptainerRuntime("apptainer").run_command("img", ["sh"], **run_args(mounts=[("/a,b", "/a,b")]))


# --- pull commands -----------------------------------------------------------------------------


@pytest.fixture
def fakes(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def test_podman_pull_logs_in_with_the_password_on_stdin(fakes):
    podman = fake_program(fakes, "podman", "exit 1")  # `podman image exists` says: not local
    commands = PodmanRuntime(podman).pull_command(
        "demo.azurecr.io/train:1", server_url="https://demo.azurecr.io/", username="demo", password=SECRET
    )
    assert commands == [
        [podman, "login", "--username", "demo", "--password-stdin", "demo.azurecr.io"],
        [podman, "pull", "demo.azurecr.io/train:1"],
    ]
    assert (fakes / "podman.log").read_text() == "image exists demo.azurecr.io/train:1\n"


@pytest.mark.parametrize(
    ("image", "pulled"),
    [
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("microsoft/cntk:2.1-gpu", "docker.io/microsoft/cntk:2.1-gpu"),
        ("localhost:5000/x", "localhost:5000/x"),
        ("localhost/x", "localhost/x"),
    ],
)
def test_podman_pulls_short_names_from_docker_hub(fakes, image, pulled):
    podman = fake_program(fakes, "podman", "exit 1")
    assert PodmanRuntime(podman).pull_command(image, server_url=None, username=None, password=None) == [
        [podman, "pull", pulled]
    ]


def test_docker_pull_and_login_to_the_image_registry(fakes):
    docker = fake_program(fakes, "docker", "exit 1")
    assert DockerRuntime(docker).pull_command("ubuntu", server_url=None, username="me", password=SECRET) == [
        [docker, "login", "--username", "me", "--password-stdin", "docker.io"],
        [docker, "pull", "ubuntu"],
    ]
    assert DockerRuntime(docker).pull_command("quay.io/org/img:2", server_url=None, username="me", password=SECRET) == [
        [docker, "login", "--username", "me", "--password-stdin", "quay.io"],
        [docker, "pull", "quay.io/org/img:2"],
    ]
    assert (fakes / "docker.log").read_text() == (
        "image inspect --format {{.Id}} ubuntu\nimage inspect --format {{.Id}} quay.io/org/img:2\n"
    )


@pytest.mark.parametrize("runtime_class", [DockerRuntime, PodmanRuntime])
def test_no_pull_when_the_image_is_local(fakes, runtime_class):
    program = fake_program(fakes, runtime_class.name, "exit 0")
    assert runtime_class(program).pull_command("img", server_url="r.io", username="u", password=SECRET) == []


def test_a_username_without_a_password_is_an_error(fakes):
    docker = fake_program(fakes, "docker", "exit 1")
    with pytest.raises(BatchAIError) as raised:
        DockerRuntime(docker).pull_command("r.io/img", server_url="r.io", username="u", password=None)
    assert str(raised.value) == (
        'The registry credentials for user "u" have no password. Give credentials.password '
        "(passwordSecretReference needs Azure Key Vault, which batchai does not read)."
    )


def test_apptainer_pull_is_a_login_at_most():
    apptainer = ApptainerRuntime("/usr/bin/apptainer")
    assert apptainer.pull_command("train:1", server_url="demo.azurecr.io", username="demo", password=SECRET) == [
        [
            "/usr/bin/apptainer",
            "registry",
            "login",
            "--username",
            "demo",
            "--password-stdin",
            "docker://demo.azurecr.io",
        ]
    ]
    assert ApptainerRuntime("/opt/bin/singularity").pull_command(
        "train:1", server_url=None, username="demo", password=SECRET
    ) == [["/opt/bin/singularity", "remote", "login", "--username", "demo", "--password-stdin", "docker://docker.io"]]
    assert apptainer.pull_command("ubuntu", server_url=None, username=None, password=None) == []
    assert apptainer.pull_command("/images/t.sif", server_url="r.io", username="u", password=SECRET) == []


# --- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "image"),
    [
        ({"image": "microsoft/cntk:2.1"}, "microsoft/cntk:2.1"),
        ({"image": "train:1", "serverUrl": "demo.azurecr.io"}, "demo.azurecr.io/train:1"),
        ({"image": "team/train:1", "serverUrl": "https://demo.azurecr.io/"}, "demo.azurecr.io/team/train:1"),
        ({"image": "demo.azurecr.io/myimage", "serverUrl": "demo.azurecr.io"}, "demo.azurecr.io/myimage"),
        ({"image": "other.io/myimage", "serverUrl": "demo.azurecr.io"}, "other.io/myimage"),
        ({"image": "x", "serverUrl": "localhost:5000"}, "localhost:5000/x"),
        ({"image": "ubuntu", "serverUrl": "https://index.docker.io/v1/"}, "docker.io/ubuntu"),
    ],
)
def test_effective_image(registry, image):
    assert effective_image({"imageSourceRegistry": registry, "shmSize": "1g"}) == image


def test_effective_image_needs_an_image():
    with pytest.raises(BatchAIError) as raised:
        effective_image({"imageSourceRegistry": {"image": " "}})
    assert str(raised.value) == (
        "containerSettings.imageSourceRegistry.image is empty. Give the image to run, "
        'e.g. "ubuntu:22.04" or "myregistry.azurecr.io/train:1".'
    )


def test_registry_credentials():
    settings = {
        "imageSourceRegistry": {"image": "i", "serverUrl": "r.io", "credentials": {"username": "u", "password": SECRET}}
    }
    assert registry_credentials(settings) == ("r.io", "u", SECRET)
    assert registry_credentials({"imageSourceRegistry": {"image": "i"}}) == (None, None, None)


# --- choosing a runtime ------------------------------------------------------------------------


def which_of(*installed):
    return lambda program: f"/usr/bin/{program}" if program in installed else None


@pytest.mark.parametrize(
    ("installed", "found"),
    [
        (("docker", "podman", "apptainer"), DockerRuntime("/usr/bin/docker")),
        (("podman", "apptainer"), PodmanRuntime("/usr/bin/podman")),
        (("apptainer", "singularity"), ApptainerRuntime("/usr/bin/apptainer")),
        (("singularity",), ApptainerRuntime("/usr/bin/singularity")),
    ],
)
def test_find_runtime_in_preference_order(installed, found):
    runtime = find_runtime(which=which_of(*installed))
    assert (type(runtime), runtime.executable) == (type(found), found.executable)


def test_find_runtime_preferred_and_forced(monkeypatch):
    everything = which_of("docker", "podman", "apptainer")
    assert find_runtime("podman", which=everything).name == "podman"
    assert find_runtime("singularity", which=which_of("singularity")).executable == "/usr/bin/singularity"
    assert find_runtime("podman", which=which_of("docker")) is None
    assert find_runtime(which=which_of()) is None
    monkeypatch.setenv("BATCHAI_CONTAINER_RUNTIME", "Apptainer")
    assert find_runtime(which=everything).name == "apptainer"
    assert find_runtime("docker", which=everything).name == "docker"  # an explicit choice wins


def test_unknown_runtime_names():
    with pytest.raises(UsageError) as raised:
        find_runtime("rkt", which=which_of())
    assert str(raised.value) == (
        'the container runtime asked for is "rkt", which is not a container runtime. '
        "Use one of docker, podman, apptainer (or singularity, apptainer's old name)."
    )


def test_unknown_forced_runtime(monkeypatch):
    monkeypatch.setenv("BATCHAI_CONTAINER_RUNTIME", "lxc")
    with pytest.raises(BatchAIError) as raised:
        require_runtime("img", which=which_of())
    assert not isinstance(raised.value, UsageError)
    assert str(raised.value) == (
        'BATCHAI_CONTAINER_RUNTIME is "lxc", which is not a container runtime. '
        "Use one of docker, podman, apptainer (or singularity, apptainer's old name)."
    )


@pytest.fixture
def broken_runtimes(fakes):
    """A docker client with no daemon and a podman whose OCI runtime fails, as on this machine kind."""
    fake_program(
        fakes,
        "docker",
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
        'Is the docker daemon running?" >&2; exit 1',
    )
    fake_program(
        fakes,
        "podman",
        'echo "Error: OCI runtime error: crun: cgroups in hybrid mode not supported, '
        'drop all controllers from cgroupv2" >&2; exit 126',
    )
    return lambda program: shutil.which(program, path=str(fakes))


def test_require_runtime_names_every_choice(broken_runtimes):
    with pytest.raises(BatchAIError) as raised:
        require_runtime("microsoft/cntk:2.1", which=broken_runtimes)
    assert str(raised.value) == (
        'The job asks for the container image "microsoft/cntk:2.1", but no container runtime works on this machine '
        "(docker: installed but cannot run containers here: Cannot connect to the Docker daemon at "
        "unix:///var/run/docker.sock. Is the docker daemon running?; "
        "podman: installed but cannot run containers here: OCI runtime error: crun: cgroups in hybrid mode not "
        "supported, drop all controllers from cgroupv2; "
        "apptainer: not installed). Install one of them, or pass --no-container to run the same command on the host."
    )


def test_require_runtime_forced_names_only_that_choice(broken_runtimes, monkeypatch):
    monkeypatch.setenv("BATCHAI_CONTAINER_RUNTIME", "singularity")
    with pytest.raises(BatchAIError) as raised:
        require_runtime("img", which=broken_runtimes)
    assert str(raised.value) == (
        'The job asks for the container image "img", but the container runtime chosen by BATCHAI_CONTAINER_RUNTIME '
        "does not work on this machine (apptainer: not installed). Install it, choose another of docker, podman, "
        "apptainer, or pass --no-container to run the same command on the host."
    )
    with pytest.raises(BatchAIError, match=r"runtime asked for does not work on this machine \(docker: installed"):
        require_runtime("img", "docker", which=broken_runtimes)


def test_require_runtime_takes_the_first_that_works(fakes, broken_runtimes):
    # podman's probe runs a missing command in an empty root: "not found" (127) means it got that far
    fake_program(fakes, "podman", "exit 127")
    fake_program(fakes, "apptainer", "echo 'apptainer version 1.3.4'")
    runtime = require_runtime("img", which=broken_runtimes)
    assert (runtime.name, runtime.executable) == ("podman", str(fakes / "podman"))
    probe = (fakes / "podman.log").read_text().split()
    assert probe[:5] == ["run", "--rm", "--network", "host", "--rootfs"]
    assert probe[6:] == ["/batchai-probe"]
    assert not Path(probe[5]).exists()  # the empty root folder is gone
    assert require_runtime("img", "apptainer", which=broken_runtimes).name == "apptainer"


def test_probe_failures_read_well(fakes):
    silent = fake_program(fakes, "docker", "exit 3")
    assert DockerRuntime(silent).usable() == (False, "`docker info` exited with code 3")
    assert DockerRuntime(str(fakes / "missing")).usable() == (
        False,
        f"cannot start {fakes}/missing: No such file or directory",
    )
    apptainer = fake_program(fakes, "apptainer", "echo 'FATAL:   could not open config' >&2; exit 255")
    assert ApptainerRuntime(apptainer).usable() == (False, "could not open config")


def test_real_docker_client_without_a_daemon_is_named(tmp_path):
    """The machine's own docker (a client with no engine on this machine kind), alone on PATH."""
    real = shutil.which("docker")
    folder = tmp_path / "bin"
    folder.mkdir()
    if real:
        (folder / "docker").symlink_to(real)
    ok, reason = DockerRuntime(real).usable() if real else (False, "")
    expected = f"docker: installed but cannot run containers here: {reason}" if real else "docker: not installed"
    assert not ok, "this machine kind has no Docker engine"
    with pytest.raises(BatchAIError) as raised:
        require_runtime("img", which=lambda program: shutil.which(program, path=str(folder)))
    assert str(raised.value) == (
        f'The job asks for the container image "img", but no container runtime works on this machine ({expected}; '
        "podman: not installed; apptainer: not installed). Install one of them, or pass --no-container to run the "
        "same command on the host."
    )


# --- real runs under podman --------------------------------------------------------------------


@pytest.mark.integration
def test_real_machine_chooses_podman(podman):
    runtime = require_runtime("img")
    assert (runtime.name, runtime.executable) == ("podman", podman.executable)
    assert find_runtime("podman").executable == podman.executable


@pytest.mark.integration
def test_podman_runs_the_command_with_mounts_and_variables(podman, container_image, tmp_path):
    share = tmp_path / "share"
    (share / "wd").mkdir(parents=True)
    env = {"OUT": str(share), "GREETING": "from the container", "API_TOKEN": SECRET}
    script = (
        'echo "$GREETING" && pwd && grep " /dev/shm " /proc/mounts | grep -o "size=[0-9]*k" '
        '&& echo "$API_TOKEN" > "$OUT/written-inside.txt" && exit 7'
    )
    argv = podman.run_command(
        container_image,
        ["sh", "-c", script],
        mounts=[(str(share), str(share))],
        env=env,
        workdir=str(share / "wd"),
        shm_size="64m",
        name=f"batchai-test-{uuid.uuid4().hex[:8]}",
    )
    assert not [arg for arg in argv if SECRET in arg]
    result = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (7, f"from the container\n{share}/wd\nsize=65536k\n"), result.stderr
    assert (share / "written-inside.txt").read_text() == f"{SECRET}\n"


@pytest.mark.integration
def test_podman_container_reaches_the_host_network(podman, container_image):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"node answered {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/worker-0"
        argv = podman.run_command(
            container_image,
            ["wget", "-q", "-O", "-", url],
            mounts=[],
            env={},
            workdir=None,
            shm_size=None,
            name=f"batchai-test-{uuid.uuid4().hex[:8]}",
        )
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert (result.returncode, result.stdout) == (0, "node answered /worker-0"), result.stderr


@pytest.mark.integration
def test_podman_kill_command_stops_the_container(podman, container_image):
    name = f"batchai-test-{uuid.uuid4().hex[:8]}"
    argv = podman.run_command(
        container_image, ["sleep", "300"], mounts=[], env={}, workdir=None, shm_size=None, name=name
    )
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not running(podman, name):
            assert time.monotonic() < deadline and process.poll() is None, "the container never started"
            time.sleep(0.1)
        subprocess.run(podman.kill_command(name), check=True, capture_output=True, timeout=60)
        assert process.wait(timeout=60) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert subprocess.run([podman.executable, "container", "exists", name], check=False).returncode == 1  # --rm


@pytest.mark.integration
def test_podman_pull_of_a_local_image_is_nothing(podman, container_image):
    assert podman.pull_command(container_image, server_url=None, username=None, password=None) == []


def running(podman, name: str) -> bool:
    result = subprocess.run(
        [podman.executable, "container", "inspect", "--format", "{{.State.Running}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() == "true"
