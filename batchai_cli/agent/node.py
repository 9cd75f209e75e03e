"""The agent's run on one node: folders, volumes, variables, job preparation, the toolkit's
processes with their logs shipped live, staged outputs uploaded, and the node's result recorded.

The result (`result-<task>.json` in the job's shared folder) is what the runner reads:
{"exitCode": int | None, "errors": [{"code", "message", "details"}], "essential": bool}.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

from batchai_cli import bundle as bundles
from batchai_cli import ids, private
from batchai_cli.agent import environment, layout, toolkits
from batchai_cli.agent.logs import LogShipper, Stream
from batchai_cli.agent.volumes import (
    Placed,
    clean_node,
    linked_folders,
    place,
    release,
    upload_changes,
    volume_mode,
)
from batchai_cli.models import batchai_error
from batchai_cli.procs import ready_for_signals
from batchai_cli.storage import paths

KILL_GRACE = 5.0
LAUNCH_WAIT = 60.0


class NodeRun:
    """One node's part of a job, from the job's bundle only (never state.db): the request the
    CLI wrote at `job create`, and the launch the runner wrote when the job got its nodes."""

    def __init__(self, job_id: str, task_index: int, bundle_path: str, *, slurm_node: str | None = None):
        self.bundle = bundles.adopt(bundle_path)
        request = self.bundle.request()
        launch = self.bundle.read(bundles.LAUNCH)
        if launch is None and slurm_node:
            launch = self._wait_for_launch()
        if launch is None:
            raise SystemExit(f"The job's launch ({self.bundle.file(bundles.LAUNCH)}) is missing: no runner started it.")
        self.rid = ids.parse(request["id"], expect="job")
        if str(self.rid) != job_id:
            raise SystemExit(f"The bundle {bundle_path} is job {self.rid}'s, not {job_id}'s.")
        self.task_index = task_index
        self.body = request["body"]
        self.properties = request["properties"]
        self.options = {**(request.get("options") or {}), **launch}
        self.cluster_properties = (request.get("cluster") or {}).get("properties") or {}
        self.slurm_job = os.environ.get("SLURM_JOB_ID") if slurm_node else None
        if slurm_node:  # a Slurm node goes by its Slurm name
            self.node_id = slurm_node
        else:
            self.node_id = launch["node_ids"][task_index]
        self.node_count = len(launch["nodes"])
        # Where each node is reached: the runner looks Slurm nodes' addresses up; local ones are here.
        self.hosts = launch.get("hosts") or ["127.0.0.1"] * self.node_count
        self.segment = self.body["jobOutputDirectoryPathSegment"]
        self.job_dir = layout.job_dir(self.node_id, self.rid)
        self.shared = self.bundle.path
        self.errors: list[dict] = []
        self.children: list[subprocess.Popen] = []
        self.terminated = False
        self.multi = self.node_count > 1

    def _wait_for_launch(self) -> dict | None:
        """A Slurm job's batch script starts the agents' step first, and its runner writes the
        launch while Slurm starts them: wait for it; SystemExit when the job is stopped meanwhile.
        None when it does not come (the runner gives up on its address lookup after 30 s)."""
        deadline = time.monotonic() + LAUNCH_WAIT
        delay = 0.005
        while time.monotonic() < deadline:
            if os.path.exists(self.bundle.file(bundles.STOP_AGENTS)):
                raise SystemExit("The job was stopped before its runner gave this node its launch.")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            self.bundle.look_again()
            launch = self.bundle.read(bundles.LAUNCH)
            if launch is not None:
                return launch
        return None

    # -- naming -----------------------------------------------------------------------------------

    def _node_file(self, stem: str, ext: str) -> str:
        return f"{stem}-{self.node_id}{ext}" if self.multi else f"{stem}{ext}"

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        ready_for_signals()
        if self.slurm_job:  # a stop signalled before the handlers were in place was ignored
            self.terminated = os.path.exists(self.bundle.file(bundles.STOP_AGENTS))
        for folder in (self.job_dir, self.shared):
            os.makedirs(folder, exist_ok=True)
        exit_code: int | None = None
        essential = False
        volumes = paths.job_volumes(self.properties, self.cluster_properties)
        try:
            store, key = paths.resolve(self.properties["stdOutErrPathPrefix"], volumes)
        except Exception as exc:
            self.fail(
                batchai_error(
                    "StdOutErrPathUnreachable",
                    f"Cannot use stdOutErrPathPrefix '{self.properties['stdOutErrPathPrefix']}': {exc}",
                )
            )
            return self._finish(None, False, [])
        stdouterr_key = "/".join(part for part in (key, self.segment, "stdouterr") if part)
        self.shipper = LogShipper(store, stdouterr_key, layout.spool_dir(self.node_id, self.rid))
        self.execution = self.shipper.open(self._node_file("execution", ".log"))
        self.shipper.start()
        self.placed = placed = []
        try:
            in_slurm = f" in Slurm job {self.slurm_job}" if self.slurm_job else ""
            self.note(
                f"Job {self.rid.name} on node {self.node_id} (task {self.task_index} of {self.node_count}){in_slurm}."
            )
            clean_node(layout.node_root(self.node_id), self.note)
            env, placed = self._prepare(volumes)
            if self._stop_requested():
                raise _Stop
            launches = self._plan(env)
            essential = bool([launch for launch in launches if launch.role != "ps"]) or self.task_index == 0
            prep = self.properties.get("jobPreparation") or {}
            if prep.get("commandLine"):
                code = self._run_processes(
                    [
                        toolkits.Launch(
                            prep["commandLine"],
                            self._node_file("stdout-job_prep", ".txt"),
                            self._node_file("stderr-job_prep", ".txt"),
                        )
                    ],
                    env,
                )
                if code != 0:
                    self.fail(
                        batchai_error(
                            "JobPreparationFailed",
                            f"The job preparation task failed with exit code {code}.",
                            node=self.node_id,
                        )
                    )
                    exit_code = code
                    raise _Stop
            if mpi := toolkits.missing_mpi(
                self.properties, self.node_count, env.get("PATH"), in_container=bool(self.options.get("container"))
            ):
                self.fail(mpi)
                raise _Stop
            if self.multi:
                self._wait_for_every_node()
            if not launches:
                self.note("This node runs no process of its own for this toolkit; it waits for the job to end.")
                while not self._stop_requested():
                    time.sleep(0.2)
                exit_code = 0
            else:
                exit_code = self._run_processes(launches, env)
        except _Stop:
            pass
        except Exception as exc:
            self.fail(batchai_error("NodeSetupFailed", f"{type(exc).__name__}: {exc}", node=self.node_id))
            self.note(f"Failed: {exc}")
        if self.terminated:
            self.note("Stopped: the job was terminated.")
        problems = self._upload(placed, volumes, stdouterr_key, store)
        return self._finish(exit_code, essential, problems)

    def _wait_for_every_node(self) -> None:
        """The toolkit starts once every node of the job has prepared (its volumes and its
        jobPreparation): say this node is ready, then wait for the others. A node that ended
        without being ready stops this one; its result says why, and the runner stops the rest."""
        private.write_whole(self.bundle.prepared_path(self.task_index), "")
        waiting, delay, said = set(range(self.node_count)), 0.01, False
        while True:
            self.bundle.look_again()
            waiting = {task for task in waiting if not os.path.exists(self.bundle.prepared_path(task))}
            if not waiting:
                return
            ended = sorted(task for task in waiting if self.bundle.agent_ended(task))
            if ended:
                self.note(f"Task {ended[0]} of the job ended before it was ready; this node stops.")
                raise _Stop
            if self._stop_requested():
                raise _Stop
            if not said and delay >= 0.2:
                tasks = ", ".join(map(str, sorted(waiting)))
                self.note(f"Waiting for task{'s' if len(waiting) > 1 else ''} {tasks} of the job to be ready.")
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _stop_requested(self) -> bool:
        """Whether the job is to stop: a signal came, or the bundle holds a stop request. The
        request is what a node has when its runner is dead: whoever found that asked for a stop
        before stopping the processes the agents had recorded (layout.kill_job_processes), so an
        agent that records its processes after that finds the request."""
        if not self.terminated and self.bundle.stop_reason():
            self.terminated = True
        return self.terminated

    def _on_term(self, _signum, _frame) -> None:
        self.terminated = True
        for child in list(self.children):
            _signal_group(child.pid, signal.SIGTERM)

    def fail(self, problem: dict) -> None:
        """Record an error of this node: in the job's errors, and in execution.log when it is open."""
        self.errors.append(problem)
        if hasattr(self, "execution"):
            self.note(f"Error {problem['code']}: {problem['message']}")

    def note(self, message: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.execution.text(f"{stamp} {message}\n")

    # -- preparation ------------------------------------------------------------------------------

    def _prepare(self, volumes: list[paths.Volume]) -> tuple[dict, list[Placed]]:
        node = layout.node_root(self.node_id)
        mount_root = os.path.join(node, "mounts")
        job_mount_root = os.path.join(self.job_dir, "mounts")
        roots = {paths.JOB_ROOT: job_mount_root, paths.CLUSTER_ROOT: mount_root}
        for root in roots.values():
            os.makedirs(root, exist_ok=True)
        placed = self.placed
        for volume in volumes:
            root = job_mount_root if volume.level == "job" else mount_root
            try:
                placed.append(place(volume, root, self.note, mode=volume_mode(self.options.get("volumes"))))
            except Exception as exc:
                self.fail(
                    batchai_error(
                        "MountFailed", f"Cannot mount {volume.shown_as}: {_describe(exc)}", volume=volume.shown_as
                    )
                )
                raise _Stop from None
        env = environment.inherited(os.environ)
        env.update(
            {
                "AZ_BATCHAI_MOUNT_ROOT": mount_root,
                "AZ_BATCHAI_JOB_MOUNT_ROOT": job_mount_root,
                "AZ_BATCHAI_JOB_TEMP": self.job_dir,
                "AZ_BATCHAI_JOB_TEMP_DIR": os.path.join(node, "jobs"),
                "AZ_BATCHAI_SHARED_JOB_TEMP": self.shared,
                "AZ_BATCHAI_MPI_HOST_FILE": os.path.join(self.shared, "hostfile"),
                "AZ_BATCHAI_NUM_GPUS": str(_gpu_count()),
                "AZ_BATCHAI_TASK_INDEX": str(self.task_index),
            }
        )
        if self.slurm_job:
            # The job's own srun steps (Open MPI's mpirun starts its daemons with srun) share the
            # nodes with the agents' step, which holds them.
            env["SLURM_OVERLAP"] = "1"
        stdouterr = paths.expand(self.properties["stdOutErrPathPrefix"], roots)
        env["AZ_BATCHAI_STDOUTERR_DIR"] = os.path.join(stdouterr, self.segment, "stdouterr")
        os.makedirs(env["AZ_BATCHAI_STDOUTERR_DIR"], exist_ok=True)
        for directory in self.properties.get("inputDirectories") or []:
            env[f"AZ_BATCHAI_INPUT_{directory['id']}"] = paths.expand(directory["path"], roots)
        for directory in self.properties.get("outputDirectories") or []:
            prefix = paths.expand(directory["pathPrefix"], roots)
            path = os.path.join(prefix, self.segment, "outputs", *(p for p in [directory.get("pathSuffix")] if p))
            os.makedirs(path, exist_ok=True)
            env[f"AZ_BATCHAI_OUTPUT_{directory['id']}"] = path
        for variable in self.properties.get("environmentVariables") or []:
            env[variable["name"]] = variable.get("value") or ""
        for secret in self.properties.get("secrets") or []:
            if secret.get("value") is not None:
                env[secret["name"]] = secret["value"]
            else:
                self.note(
                    f"Secret {secret['name']} refers to a Key Vault secret, which batchai cannot read; "
                    "it is left unset."
                )
        # Each node's MPI ranks start in that node's environment of the job (agent/shell.py). Under
        # Slurm, mpirun accepts only the allocation's node names and starts its daemons with srun,
        # through batchai's launch agent. The nodes of a local cluster are this machine: mpirun
        # reaches each through batchai's rsh shim. (A container has neither shim nor batchai.)
        hosts = self.options.get("node_names")
        if self.multi and not self.options.get("container"):
            from batchai_cli.agent import shell  # multi-node jobs only: the agent starts light

            if hosts is None:
                hosts = [shell.mpi_host(node) for node in self.options["node_ids"]]
                env["OMPI_MCA_plm_rsh_agent"] = shell.write_rsh_shim(self.bundle)
            else:
                env["OMPI_MCA_orte_launch_agent"] = shell.write_launch_agent(self.bundle)
        if self.task_index == 0:
            with open(env["AZ_BATCHAI_MPI_HOST_FILE"], "w") as handle:
                slots = _slots(self.properties, self.node_count)
                handle.write(toolkits.host_file(hosts or ["localhost"] * self.node_count, slots))
        self.env = env
        self.linked_folders = linked_folders(placed)
        self.user_variables = {
            v["name"]
            for v in (self.properties.get("environmentVariables") or []) + (self.properties.get("secrets") or [])
        }
        # The job's environment on this node, for what runs beside it (agent/shell.py). Secrets go
        # by name: their values stay in the request alone.
        secrets = {secret["name"] for secret in self.properties.get("secrets") or [] if secret.get("value") is not None}
        variables = environment.recorded(env, os.environ, self.user_variables)
        record = {"variables": {name: value for name, value in variables.items() if name not in secrets}}
        self.bundle.write(
            environment.record_name(self.task_index), {"cwd": self.job_dir, **record, "secrets": sorted(secrets)}
        )
        if self.options.get("container"):
            self._pull_image()
        return env, placed

    def _plan(self, env: dict) -> list[toolkits.Launch]:
        python = "python" if shutil.which("python", path=env.get("PATH")) else "python3"
        cluster = toolkits.Cluster(hosts=self.hosts, ports=self.options.get("ports", []))
        launches = toolkits.plan(
            self.properties,
            self.task_index,
            cluster,
            default_python=python,
            mpi_options="--allow-run-as-root --oversubscribe" if os.geteuid() == 0 else "--oversubscribe",
        )
        key = toolkits.toolkit_of(self.properties)
        if key == "pyTorchSettings":
            settings = self.properties[key]
            env["AZ_BATCHAI_PYTORCH_BACKEND"] = (settings.get("communicationBackend") or "gloo").lower()
            env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] = f"tcp://{cluster.hosts[0]}:{cluster.port(0)}"
        if key == "tensorFlowSettings":
            ps, wk = toolkits.tensorflow_layout(self.properties[key], cluster)
            env["AZ_BATCHAI_PS_HOSTS"], env["AZ_BATCHAI_WORKER_HOSTS"] = ",".join(ps), ",".join(wk)
        return launches

    # -- processes --------------------------------------------------------------------------------

    def _run_processes(self, launches: list[toolkits.Launch], env: dict) -> int | None:
        """Start the launches, ship their output, wait for all; the first launch's exit code wins
        unless it succeeded and another failed."""
        threads = []
        started = []
        if self._stop_requested():
            raise _Stop
        for launch in launches:
            out, err = self.shipper.open(launch.stdout), self.shipper.open(launch.stderr)
            argv = self._argv(launch, env)
            self.note(f"Starting ({launch.role}): {launch.command}")
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env={**env, **launch.env},
                    cwd=self.job_dir,
                    process_group=0,
                    umask=private.job_umask(),
                )
            except OSError as exc:
                self.fail(batchai_error("ProcessStartFailed", f"Cannot start {argv[0]}: {_describe(exc)}"))
                self._stop_children()
                return None
            self.children.append(child)
            self._record_groups()
            if self._stop_requested():  # asked for after the look above, before the record
                self._on_term(None, None)
            started.append((launch, child))
            for pipe, stream in ((child.stdout, out), (child.stderr, err)):
                thread = threading.Thread(target=_pump, args=(pipe, stream), daemon=True)
                thread.start()
                threads.append(thread)
        essential = [(launch, child) for launch, child in started if launch.role != "ps"] or started
        for _launch, child in essential:
            child.wait()
        # Parameter servers never end on their own: they stop when the workers are done.
        for launch, child in started:
            if child.poll() is None:
                self.note(f"Stopping {launch.role} process {child.pid}: the workers are done.")
                _signal_group(child.pid, signal.SIGTERM)
        for _launch, child in started:
            _wait_or_kill(child)
        for thread in threads:
            thread.join()
        codes = [_exit_code(child.returncode) for launch, child in essential]
        for (launch, child), code in zip(essential, codes, strict=True):
            self.note(f"Process {child.pid} ({launch.role}) exited with code {code}.")
        first = codes[0]
        return first if first != 0 else next((code for code in codes if code != 0), 0)

    def _argv(self, launch: toolkits.Launch, env: dict) -> list[str]:
        container = self.options.get("container")
        if not container:
            return ["bash", "-c", launch.command]
        variables = {**env, **launch.env}
        # The job sees the same paths inside as outside: every AZ_BATCHAI_* folder, and the local
        # folders its mounts link to.
        paths_in = {
            v for k, v in variables.items() if k.startswith("AZ_BATCHAI_") and os.path.isabs(v) and os.path.exists(v)
        } | set(self.linked_folders)
        names = {
            k: v
            for k, v in variables.items()
            if k.startswith("AZ_BATCHAI_") or k == "TF_CONFIG" or k in self.user_variables
        }
        # Batch AI ran commands with bash; an image without bash still has sh.
        shell = [
            "sh",
            "-c",
            'command -v bash >/dev/null 2>&1 && exec bash -c "$1" || exec sh -c "$1"',
            "sh",
            launch.command,
        ]
        return self.runtime.run_command(
            container["image"],
            shell,
            mounts=sorted((p, p) for p in paths_in),
            env=names,
            workdir=self.job_dir,
            shm_size=container.get("shmSize"),
            name=f"batchai-{bundles.job_uuid(self.body)[:12]}-{self.task_index}-{len(self.children)}",
        )

    def _pull_image(self) -> None:
        """Fetch the job's image (a registry login first when it has credentials)."""
        from batchai_cli.agent.containers import find_runtime, registry_credentials

        container = self.options["container"]
        self.runtime = find_runtime(container.get("runtime"))
        if self.runtime is None:
            self.fail(
                batchai_error(
                    "ContainerRuntimeMissing",
                    f"The container runtime {container.get('runtime')} is no longer on this node.",
                )
            )
            raise _Stop
        server, username, password = registry_credentials(self.properties.get("containerSettings") or {})
        self.note(f"The job runs in the container image {container['image']} ({self.runtime.name}).")
        for line in self.runtime.run_notes(shm_size=container.get("shmSize")):
            self.note(line)
        for argv in self.runtime.pull_command(
            container["image"], server_url=server, username=username, password=password
        ):
            self.note(f"Running: {' '.join(argv)}")
            done = subprocess.run(
                argv,
                input=password if "--password-stdin" in argv else None,
                text=True,
                capture_output=True,
                env=self.env,
            )
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                self.fail(
                    batchai_error(
                        "ContainerImagePullFailed",
                        f"Cannot fetch the image {container['image']}: {last[0]}",
                        image=container["image"],
                    )
                )
                raise _Stop

    def _record_groups(self) -> None:
        with open(layout.process_groups_path(self.body, self.task_index), "w") as handle:
            handle.write("\n".join(str(child.pid) for child in self.children))

    def _stop_children(self) -> None:
        for child in self.children:
            if child.poll() is None:
                _signal_group(child.pid, signal.SIGTERM)
        for child in self.children:
            _wait_or_kill(child)

    # -- the end ----------------------------------------------------------------------------------

    def _upload(self, placed: list[Placed], volumes, stdouterr_key: str, log_store) -> list[str]:
        problems = []
        for item in placed:
            skip = []
            if item.store is not None and item.store.url() == log_store.url():
                skip.append(stdouterr_key)
            try:
                problems += upload_changes(item, skip, self.note)
            except Exception as exc:
                problems.append(f"{item.volume.shown_as}: {_describe(exc)}")
            problems += release(item, self.note)
        return problems

    def _finish(self, exit_code: int | None, essential: bool, upload_problems: list[str]) -> int:
        for problem in upload_problems:
            self.fail(batchai_error("OutputUploadFailed", problem))
        if hasattr(self, "shipper"):
            self.note(
                f"Node finished with exit code {exit_code}."
                if exit_code is not None
                else "Node finished before the job's command ran."
            )
            for problem in self.shipper.close():
                # execution.log is closed now; the job's errors are where this one can still be seen.
                self.errors.append(batchai_error("LogShippingFailed", problem))
        result = {"exitCode": exit_code, "errors": self.errors, "essential": essential, "terminated": self.terminated}
        path = self.bundle.result_path(self.task_index)
        private.makedirs(os.path.dirname(path))
        private.write_whole(path, json.dumps(result))
        return 0 if exit_code == 0 and not self.errors else 1


class _Stop(Exception):
    """Stop the node's run here; the reason is already in self.errors."""


def _pump(pipe, stream: Stream) -> None:
    fd = pipe.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        stream.write(chunk)
    pipe.close()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait_or_kill(child: subprocess.Popen) -> None:
    try:
        child.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()


def _exit_code(returncode: int) -> int:
    # A process killed by signal N exits as a shell would report it: 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _slots(properties: dict, node_count: int) -> int:
    """Each node's slots in the MPI host file: the job's processes spread evenly over its nodes
    (processCount is the job's total; Batch AI's default is one per node)."""
    settings = properties.get(toolkits.toolkit_of(properties)) or {}
    processes = int(settings.get("processCount") or node_count)
    return max(1, -(-processes // node_count))


def _gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def main(argv: list[str]) -> int:
    job_id, task_index, bundle_path = argv[0], int(argv[1]), argv[3]
    private.enter()
    return NodeRun(job_id, task_index, bundle_path).run()


def main_slurm(job_id: str, bundle_path: str) -> int:
    """One task of a Slurm job's srun step: task and node as Slurm numbers and names them."""
    private.enter()
    return NodeRun(job_id, int(os.environ["SLURM_PROCID"]), bundle_path, slurm_node=os.environ["SLURMD_NODENAME"]).run()
