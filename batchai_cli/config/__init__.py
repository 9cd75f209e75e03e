"""job.json, cluster.json and file-server files: read them as az batchai did, check them better.

    load_document(path, kind)          the file, validated at its API version, upgraded to 2018-05-01
    validate_file(path, kind)          every error, warning and note, for `batchai validate`
    build_job_request(path, ...)       the complete, patched request of `job create`
    build_cluster_request(path, ...)   ... of `cluster create`
    build_file_server_request(...)     ... of `file-server create`

Problems in a file raise errors.InvalidConfig holding all of them (JSON path, line, column);
problems with options raise errors.BatchAIError with az's message. Nothing here prints or exits,
and jsonschema is imported only when a file is validated, never by `batchai --help`.
"""

from __future__ import annotations

from batchai_cli.config.checks import parse_duration
from batchai_cli.config.document import Document, load_document, validate_file
from batchai_cli.config.nodes import build_cluster_request, build_file_server_request
from batchai_cli.config.report import format_problem, format_problems, problem_dict
from batchai_cli.config.requests import build_job_request
from batchai_cli.config.schemas import CURRENT, KINDS, TOOLKIT_SETTINGS, VERSIONS, schema_dir
from batchai_cli.errors import BatchAIError


def tool_type(properties: dict) -> str:
    """The toolType the service derived from a job's one toolkit settings object (pyTorchSettings: pytorch)."""
    present = [key for key in TOOLKIT_SETTINGS if key in properties]
    if len(present) != 1:
        raise BatchAIError(
            "A job needs exactly one toolkit settings object: one of "
            + ", ".join(TOOLKIT_SETTINGS)
            + (f"; it has {', '.join(present)}" if present else "; it has none")
            + "."
        )
    return TOOLKIT_SETTINGS[present[0]]


__all__ = [
    "CURRENT",
    "KINDS",
    "TOOLKIT_SETTINGS",
    "VERSIONS",
    "Document",
    "build_cluster_request",
    "build_file_server_request",
    "build_job_request",
    "format_problem",
    "format_problems",
    "load_document",
    "parse_duration",
    "problem_dict",
    "schema_dir",
    "tool_type",
    "validate_file",
]
