"""Run a job's commands inside its container image (containerSettings) with docker, podman or apptainer.

This module builds the command lines; the agent runs them. Three rules hold for every runtime:
secrets never reach a command line (registry passwords go to the login command's stdin, job
variables are passed by name and read from the environment the agent gives the process), the
job sees the same paths inside as outside (each mount keeps its path, so $AZ_BATCHAI_* values
stay valid), and the container shares the host's network (nodes reach each other by host:port).

`job create` calls require_runtime() so a job whose image cannot run fails at once with an error
that names the choices; it never falls back to the host by itself (that is --no-container).
Only the standard library is imported, and subprocesses start only when a probe is asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from batchai_cli.errors import BatchAIError, UsageError

RUNTIMES = ("docker", "podman", "apptainer")
# Executable names per runtime kind, in the order they are looked for: "singularity" is apptainer's
# old name, still installed as a compatibility link by apptainer packages.
EXECUTABLES = {"docker": ("docker",), "podman": ("podman",), "apptainer": ("apptainer", "singularity")}
ALIASES = {"singularity": "apptainer"}
FORCE_VARIABLE = "BATCHAI_CONTAINER_RUNTIME"
PROBE_TIMEOUT = 30.0
# Docker Hub's historical host names; an image on it is written docker.io/<name>.
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
# Image references apptainer takes as they are; anything else is a Docker/OCI name (docker://).
APPTAINER_SCHEMES = (
    "docker://",
    "docker-daemon:",
    "docker-archive:",
    "oci:",
    "oci-archive:",
    "oras://",
    "library://",
    "shub://",
    "http://",
    "https://",
)


class ContainerRuntime:
    """One container runtime kind, found at `executable`. Subclasses build its command lines."""

    name: str = ""

    def __init__(self, executable: str):
        self.executable = executable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.executable!r})"

    def usable(self) -> tuple[bool, str]:
        """(True, "") when this runtime can start containers here, else (False, the reason in one line)."""
        raise NotImplementedError

    def pull_command(
        self, image: str, *, server_url: str | None, username: str | None, password: str | None
    ) -> list[list[str]]:
        """The commands that fetch `image`, in order: a registry login, then a pull; [] when it is already local.

        A login command reads the password on its stdin (run it with input=password): the password
        never appears in an argv. `image` is the effective_image() of the job.
        """
        raise NotImplementedError

    def run_command(
        self,
        image: str,
        argv: list[str],
        *,
        mounts: list[tuple[str, str]],
        env: dict[str, str],
        workdir: str | None,
        shm_size: str | None,
        name: str,
    ) -> list[str]:
        """The command that runs `argv` in `image`; run it with env= holding the values of `env`.

        mounts are (host path, container path) pairs; env names are passed, never their values;
        the container uses the host network, is removed when it exits and is called `name`.
        """
        raise NotImplementedError

    def kill_command(self, name: str) -> list[str] | None:
        """The command that kills the container `name`, or None when killing the process group is enough."""
        return None

    def run_notes(self, *, shm_size: str | None) -> list[str]:
        """Lines for execution.log about settings this runtime cannot honour."""
        return []

    def _probe(self, argv: list[str]) -> subprocess.CompletedProcess[str] | str:
        """Run a short probe; its result, or the reason it could not run."""
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(argv[1:3])}` did not answer within {PROBE_TIMEOUT:g} s"
        except OSError as exc:
            return f"cannot start {self.executable}: {exc.strerror or exc}"


class DockerRuntime(ContainerRuntime):
    """Docker (a daemon that runs the containers; the client alone cannot)."""

    name = "docker"

    def usable(self) -> tuple[bool, str]:
        result = self._probe([self.executable, "info", "--format", "{{.ServerVersion}}"])
        if isinstance(result, str):
            return False, result
        if result.returncode != 0:
            return False, _last_line(result, f"`{self.name} info` exited with code {result.returncode}")
        return True, ""

    def has_image(self, image: str) -> bool:
        """True when `image` is in the local image store."""
        result = self._probe([self.executable, "image", "inspect", "--format", "{{.Id}}", image])
        return not isinstance(result, str) and result.returncode == 0

    def pull_reference(self, image: str) -> str:
        """The name to pull `image` by."""
        return image

    def pull_command(
        self, image: str, *, server_url: str | None, username: str | None, password: str | None
    ) -> list[list[str]]:
        if self.has_image(image):
            return []
        commands = []
        if _wants_login(username, password):
            commands.append(
                [self.executable, "login", "--username", username, "--password-stdin", login_server(image, server_url)]
            )
        commands.append([self.executable, "pull", self.pull_reference(image)])
        return commands

    def run_command(
        self,
        image: str,
        argv: list[str],
        *,
        mounts: list[tuple[str, str]],
        env: dict[str, str],
        workdir: str | None,
        shm_size: str | None,
        name: str,
    ) -> list[str]:
        command = [self.executable, "run", "--rm", "--name", name, "--network", "host"]
        if shm_size:
            command += ["--shm-size", shm_size]
        for host_path, container_path in mounts:
            _check_mount_path(host_path, ":")
            _check_mount_path(container_path, ":")
            command += ["--volume", f"{host_path}:{container_path}"]
        for variable in env:
            command += ["--env", _checked_variable(variable)]
        if workdir:
            command += ["--workdir", workdir]
        return [*command, image, *argv]

    def kill_command(self, name: str) -> list[str] | None:
        return [self.executable, "kill", name]


class PodmanRuntime(DockerRuntime):
    """Podman: docker's command line without a daemon; the OCI runtime (crun, runc) starts each container."""

    name = "podman"

    def usable(self) -> tuple[bool, str]:
        # `podman info` answers even where no container can start (a crun that refuses hybrid
        # cgroups, rlimits above what the node may set), so start a real one: an empty root
        # folder and a command that is not there. Reaching "not found" (exit 127) means the
        # OCI runtime did all its set-up; anything else is the reason it cannot.
        import tempfile

        with tempfile.TemporaryDirectory(prefix="batchai-probe-") as rootfs:
            result = self._probe(
                [self.executable, "run", "--rm", "--network", "host", "--rootfs", rootfs, "/batchai-probe"]
            )
        if isinstance(result, str):
            return False, result
        if result.returncode != 127:
            return False, _last_line(result, f"a test container exited with code {result.returncode}")
        return True, ""

    def has_image(self, image: str) -> bool:
        result = self._probe([self.executable, "image", "exists", image])
        return not isinstance(result, str) and result.returncode == 0

    def pull_reference(self, image: str) -> str:
        # Podman asks which registry a short name means (and fails with no TTY); Batch AI's images
        # are Docker names, where a short name means Docker Hub. Once pulled, `podman run` finds
        # the short name in local storage.
        return docker_qualified(image)


class ApptainerRuntime(ContainerRuntime):
    """Apptainer (or Singularity, its old name): no daemon, no network namespace, host env passed through."""

    name = "apptainer"

    def usable(self) -> tuple[bool, str]:
        result = self._probe([self.executable, "--version"])
        if isinstance(result, str):
            return False, result
        if result.returncode != 0:
            return False, _last_line(result, f"`{self.name} --version` exited with code {result.returncode}")
        return True, ""

    def reference(self, image: str) -> str:
        """The image as apptainer names it: a local .sif or a URI as given, a Docker name as docker://."""
        if image.startswith(APPTAINER_SCHEMES) or image.startswith(("/", "./", "../")) or image.endswith(".sif"):
            return image
        return f"docker://{image}"

    def pull_command(
        self, image: str, *, server_url: str | None, username: str | None, password: str | None
    ) -> list[list[str]]:
        # `apptainer exec docker://...` fetches into apptainer's cache on first use, so only the
        # login is needed ahead; a local image file needs nothing.
        reference = self.reference(image)
        if not reference.startswith("docker://") or not _wants_login(username, password):
            return []
        # `registry login` is apptainer's; SingularityCE 3.x had the same thing as `remote login`.
        verb = "registry" if os.path.basename(self.executable) == "apptainer" else "remote"
        return [
            [
                self.executable,
                verb,
                "login",
                "--username",
                username,
                "--password-stdin",
                f"docker://{login_server(image, server_url)}",
            ]
        ]

    def run_command(
        self,
        image: str,
        argv: list[str],
        *,
        mounts: list[tuple[str, str]],
        env: dict[str, str],
        workdir: str | None,
        shm_size: str | None,
        name: str,
    ) -> list[str]:
        # Apptainer passes the whole environment of the process into the container, so `env`
        # needs no option (its --env would put values on the command line), and it shares the
        # host network and /dev/shm. `name` has no meaning: the container is the process.
        for variable in env:
            _checked_variable(variable)
        command = [self.executable, "exec"]
        for host_path, container_path in mounts:
            _check_mount_path(host_path, ":,")
            _check_mount_path(container_path, ":,")
            command += ["--bind", f"{host_path}:{container_path}"]
        if workdir:
            command += ["--pwd", workdir]
        return [*command, self.reference(image), *argv]

    def run_notes(self, *, shm_size: str | None) -> list[str]:
        if not shm_size:
            return []
        return [f'containerSettings.shmSize "{shm_size}" is ignored: apptainer containers share the node\'s /dev/shm.']


RUNTIME_CLASSES: dict[str, type[ContainerRuntime]] = {
    "docker": DockerRuntime,
    "podman": PodmanRuntime,
    "apptainer": ApptainerRuntime,
}


def find_runtime(preferred: str | None = None, *, which=shutil.which) -> ContainerRuntime | None:
    """The first installed runtime in preference order (only `preferred`, or $BATCHAI_CONTAINER_RUNTIME, when set).

    Installed means its executable is on PATH; whether it can run containers is require_runtime's question.
    """
    for kind in _candidates(preferred):
        executable = _executable(kind, which)
        if executable:
            return RUNTIME_CLASSES[kind](executable)
    return None


def require_runtime(image: str, preferred: str | None = None, *, which=shutil.which) -> ContainerRuntime:
    """The first runtime that can run containers here; BatchAIError naming every choice and why it failed otherwise."""
    candidates = _candidates(preferred)
    reasons = []
    for kind in candidates:
        executable = _executable(kind, which)
        if not executable:
            reasons.append(f"{kind}: not installed")
            continue
        runtime = RUNTIME_CLASSES[kind](executable)
        ok, reason = runtime.usable()
        if ok:
            return runtime
        reasons.append(f"{kind}: installed but cannot run containers here: {reason}")
    details = "; ".join(reasons)
    if len(candidates) == len(RUNTIMES):
        raise BatchAIError(
            f'The job asks for the container image "{image}", but no container runtime works on this machine '
            f"({details}).",
            hint="Install one of them, or pass --no-container to run the same command on the host.",
        )
    source = f"chosen by {FORCE_VARIABLE}" if preferred is None else "asked for"
    raise BatchAIError(
        f'The job asks for the container image "{image}", but the container runtime {source} does not work on '
        f"this machine ({details}).",
        hint=f"Install it, choose another of {', '.join(RUNTIMES)}, or pass --no-container to run the same "
        "command on the host.",
    )


def effective_image(container_settings: dict) -> str:
    """The image to run, by Batch AI's rule: as given, or after the serverUrl's host when it names no registry."""
    registry = container_settings.get("imageSourceRegistry") or {}
    image = str(registry.get("image") or "").strip()
    if not image:
        raise BatchAIError(
            "containerSettings.imageSourceRegistry.image is empty.",
            hint='Give the image to run, e.g. "ubuntu:22.04" or "myregistry.azurecr.io/train:1".',
        )
    server = registry.get("serverUrl")
    if server and not names_registry(image):
        return f"{registry_host(server)}/{image}"
    return image


def registry_credentials(container_settings: dict) -> tuple[str | None, str | None, str | None]:
    """(serverUrl, username, password) of a job's containerSettings, for pull_command()."""
    registry = container_settings.get("imageSourceRegistry") or {}
    credentials = registry.get("credentials") or {}
    return registry.get("serverUrl"), credentials.get("username"), credentials.get("password")


def names_registry(image: str) -> bool:
    """True when the image's first path component is a registry host (Docker's rule: a dot, a port or localhost)."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def registry_host(server_url: str) -> str:
    """The host[:port] of a serverUrl such as "https://demo.azurecr.io/"; Docker Hub's old names become docker.io."""
    host = server_url.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    return "docker.io" if host.lower() in DOCKER_HUB_HOSTS else host


def docker_qualified(image: str) -> str:
    """The fully qualified Docker name: "ubuntu" -> "docker.io/library/ubuntu", "a/b" -> "docker.io/a/b"."""
    if names_registry(image):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"


def login_server(image: str, server_url: str | None) -> str:
    """The registry to log in to: the serverUrl's host, else the image's registry, else Docker Hub."""
    if server_url:
        return registry_host(server_url)
    if names_registry(image):
        return image.split("/", 1)[0]
    return "docker.io"


def _candidates(preferred: str | None) -> tuple[str, ...]:
    if preferred is not None:
        return (_runtime_kind(preferred, "the container runtime asked for", UsageError),)
    forced = os.environ.get(FORCE_VARIABLE, "").strip()
    if forced:
        return (_runtime_kind(forced, FORCE_VARIABLE, BatchAIError),)
    return RUNTIMES


def _runtime_kind(value: str, source: str, error: type[BatchAIError]) -> str:
    kind = ALIASES.get(value.strip().lower(), value.strip().lower())
    if kind not in RUNTIMES:
        raise error(
            f'{source} is "{value}", which is not a container runtime.',
            hint=f"Use one of {', '.join(RUNTIMES)} (or singularity, apptainer's old name).",
        )
    return kind


def _executable(kind: str, which) -> str | None:
    for program in EXECUTABLES[kind]:
        path = which(program)
        if path:
            return path
    return None


def _wants_login(username: str | None, password: str | None) -> bool:
    if not username:
        return False
    if password is None:
        raise BatchAIError(
            f'The registry credentials for user "{username}" have no password.',
            hint="Give credentials.password "
            "(passwordSecretReference needs Azure Key Vault, which batchai does not read).",
        )
    return True


def _checked_variable(variable: str) -> str:
    # A name with "=" would put a value on the command line.
    if not variable or "=" in variable:
        raise BatchAIError(
            f'"{variable}" is not an environment variable name.', hint='Names may not be empty or contain "=".'
        )
    return variable


def _check_mount_path(path: str, separators: str) -> None:
    bad = [c for c in separators if c in path]
    if bad:
        raise BatchAIError(
            f'The path "{path}" cannot be mounted into a container: it contains "{bad[0]}".',
            hint="Rename the folder, or run with --no-container.",
        )


def _last_line(result: subprocess.CompletedProcess[str], fallback: str) -> str:
    for stream in (result.stderr, result.stdout):
        lines = [line.strip() for line in (stream or "").splitlines() if line.strip()]
        if lines:
            # podman and apptainer start their messages with "Error: "/"FATAL: ": the list says it already
            return lines[-1].removeprefix("Error: ").removeprefix("FATAL:").strip()
    return fallback
