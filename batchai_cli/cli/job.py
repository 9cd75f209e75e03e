"""`batchai job`: create (run), show, list, terminate, delete and wait for jobs."""

from __future__ import annotations

import click

from batchai_cli.cli import tables
from batchai_cli.cli.cluster import file_server_id, mount_options
from batchai_cli.cli.job_file import file as _file
from batchai_cli.cli.job_reports import report_wait
from batchai_cli.cli.node_exec import exec_options, run_on_node
from batchai_cli.cli.options import (
    Outcome,
    defaulted_option,
    experiment_option,
    group,
    ids_option,
    name_option,
    no_wait_option,
    pass_app,
    resource_group_option,
    workspace_option,
    yes_option,
)
from batchai_cli.cli.targets import one_or_many, resolve_targets
from batchai_cli.cli.terminal import confirm
from batchai_cli.services import jobs

_NAME_HELP = "Name of job."


def _targets(app, ids, resource_group, workspace, experiment, name):
    return resolve_targets(
        app,
        "job",
        ids,
        resource_group,
        [("workspace", workspace, "--workspace"), ("experiment", experiment, "--experiment"), ("job", name, "--name")],
    )


@group()
def job() -> None:
    """Commands to manage jobs."""


@job.command("create", table=tables.jobs)
@resource_group_option()
@workspace_option()
@experiment_option()
@name_option("-n", "--name", kind="job", help=_NAME_HELP, required=True)
@click.option(
    "-f",
    "--config-file",
    required=True,
    type=click.Path(dir_okay=True),
    help="A JSON file with the job's parameters (job.json).",
)
@defaulted_option(
    "-c",
    "--cluster",
    dest="cluster",
    default_name="cluster",
    required=False,
    kind="cluster",
    help="Name or ARM ID of the cluster to run the job on. Default: the configured cluster, else "
    "the file's cluster.id.",
)
@mount_options
@click.option(
    "--no-container",
    is_flag=True,
    help="Run the job's command on the host even though job.json names "
    "a container image (for nodes without docker, podman or apptainer).",
)
@click.option(
    "--volumes",
    type=click.Choice(["auto", "mount", "copy"]),
    default=None,
    help="How Blob containers and File shares reach the nodes: auto (mounted where the node can, "
    "else a staged copy), mount (fail where the node cannot mount), copy (always a staged copy). "
    "Default: BATCHAI_VOLUMES on the node, else auto.",
)
@click.option("--strict", is_flag=True, help="Treat unknown keys in job.json as errors.")
@click.option(
    "--stream",
    is_flag=True,
    help="Then stream the job's stdout.txt (stdout-wk-0.txt for one process "
    "per node) until it ends; stdout carries the log instead of the job's JSON.",
)
@click.option("--wait", is_flag=True, help="Then wait for the job to end and exit with its exit code.")
@pass_app
def create(app, resource_group, workspace, experiment, name, config_file, cluster, nfs, stream, wait, **options):
    """Create a job: queue it on a cluster and return at once; it runs detached from this command.

    \b
    Examples:
      Run a job on a cluster of the same workspace.
        batchai job create -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob -c MyCluster -f job.json
      Run a recipe's job.json, with the storage account its placeholders name.
        batchai job create -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob -c MyCluster -f job.json \\
            --storage-account-name MyAccount --storage-account-key MyKey
      Run a job in CI: show its output as it runs, and fail the step if the job fails.
        batchai job create -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob -c MyCluster -f job.json \\
            --stream --wait
    """
    from batchai_cli.services.clusters import resolve_cluster

    (rid,) = _targets(app, (), resource_group, workspace, experiment, name)
    cluster_rid = (
        resolve_cluster(app.session, cluster, resource_group=resource_group, workspace=workspace) if cluster else None
    )
    # The other options (--no-container, --strict, the storage and mount options) are create_job's
    # keywords, under the same names.
    created = jobs.create_job(
        app.session,
        rid,
        config_file=config_file,
        cluster=cluster_rid,
        nfs_id=file_server_id(app, nfs, resource_group, workspace),
        **options,
    )
    if stream or wait:
        from batchai_cli.cli.job_file import follow_created

        return follow_created(app, rid, stream=stream, wait=wait)
    return created


def _resource_options(function):
    for decorator in reversed(
        [
            resource_group_option(required=False),
            workspace_option(required=False),
            experiment_option(required=False),
            name_option("-n", "--name", kind="job", help=_NAME_HELP),
            ids_option,
        ]
    ):
        function = decorator(function)
    return function


@job.command("show", table=tables.jobs)
@_resource_options
@pass_app
def show(app, resource_group, workspace, experiment, name, ids):
    """Show information about a job.

    \b
    Examples:
      Show a job.
        batchai job show -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob
      Show the job's output path segment.
        batchai job show -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob \\
            --query jobOutputDirectoryPathSegment -o tsv
    """
    found = [jobs.get_job(app.session, rid) for rid in _targets(app, ids, resource_group, workspace, experiment, name)]
    return one_or_many(found)


@job.command("list", table=tables.jobs)
@resource_group_option()
@workspace_option()
@experiment_option()
@pass_app
def list_(app, resource_group, workspace, experiment):
    """List jobs in an experiment.

    \b
    Examples:
      List jobs.
        batchai job list -g MyResourceGroup -w MyWorkspace -e MyExperiment -o table
    """
    (rid,) = resolve_targets(
        app,
        "experiment",
        (),
        resource_group,
        [("workspace", workspace, "--workspace"), ("experiment", experiment, "--experiment")],
    )
    return jobs.list_jobs(app.session, rid)


@job.command("terminate")
@_resource_options
@no_wait_option
@yes_option
@pass_app
def terminate(app, resource_group, workspace, experiment, name, ids, no_wait, yes):
    """Terminate a job: stop every process of it on every node.

    \b
    Examples:
      Terminate a job and wait until it has ended.
        batchai job terminate -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob -y
    """
    targets = _targets(app, ids, resource_group, workspace, experiment, name)
    confirm(skip=yes)
    for rid in targets:
        jobs.terminate_job(app.session, rid)
    if not no_wait:
        for rid in targets:
            for _kind, _job in jobs.wait_events(app.session, rid, interval=0.2, timeout=60):
                pass


@job.command("delete")
@_resource_options
@no_wait_option
@yes_option
@pass_app
def delete(app, resource_group, workspace, experiment, name, ids, no_wait, yes):
    """Delete a job. A running job is terminated first.

    \b
    Examples:
      Delete a job without asking.
        batchai job delete -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob -y
    """
    targets = _targets(app, ids, resource_group, workspace, experiment, name)
    confirm(skip=yes)
    for rid in targets:
        jobs.delete_job(app.session, rid)


@job.command("wait")
@_resource_options
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between checks of the job's state.",
)
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (exit code 1).")
@pass_app
def wait(app, resource_group, workspace, experiment, name, ids, interval, timeout):
    """Wait for a job to end; the exit code is the job's own.

    \b
    Examples:
      Wait for a job, then act on its exit code.
        batchai job wait -g MyResourceGroup -w MyWorkspace -e MyExperiment -n MyJob && echo trained
    """
    (rid,) = _targets(app, ids, resource_group, workspace, experiment, name)
    return Outcome(None, report_wait(app, rid, interval=interval, timeout=timeout))


job.add_command(_file)


@job.group("node")
def node() -> None:
    """Commands to work with the nodes a job runs on."""


@node.command("list", table=tables.remote_logins)
@resource_group_option()
@workspace_option()
@experiment_option()
@click.option("-j", "--job", "job_name", required=True, help="Name of job.")
@pass_app
def node_list(app, resource_group, workspace, experiment, job_name):
    """List the nodes a running job holds, with how to reach them.

    \b
    Examples:
      List a job's nodes.
        batchai job node list -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -o table
    """
    (rid,) = _targets(app, (), resource_group, workspace, experiment, job_name)
    return jobs.list_remote_login_information(app.session, rid)


@node.command("exec")
@resource_group_option()
@workspace_option()
@experiment_option()
@click.option("-j", "--job", "job_name", required=True, help="Name of job.")
@exec_options
@pass_app
def node_exec(app, resource_group, workspace, experiment, job_name, command, node_id, forwards, _password, _ssh_key):
    """Run a command on a node of a running job, or forward ports of it to this machine.

    The command runs with bash in the job's environment on that node: its folder, its
    AZ_BATCHAI_* variables, its environment variables and secrets (on Slurm, as a step of the
    job's allocation). Its output and exit code are the command's own. A forwarded port listens
    on 127.0.0.1 only.

    \b
    Examples:
      List what the job has written so far in its folder on its first node.
        batchai job node exec -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob --exec ls
      Open the job's TensorBoard (port 6006 on its node) at a free local port.
        batchai job node exec -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -L 0:localhost:6006
    """
    from batchai_cli.services.nodeexec import job_target

    (rid,) = _targets(app, (), resource_group, workspace, experiment, job_name)
    return run_on_node(job_target(app.session, rid, node_id), command, forwards)
