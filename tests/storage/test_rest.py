"""The SharedKey signer agrees with azure-storage-blob's SharedKeyCredentialPolicy."""

from __future__ import annotations

import pytest

from batchai_cli.storage._rest import shared_key_string_to_sign


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        (
            "PUT",
            "/acct/c/dir/a%20b.txt",
            [],
            {
                "x-ms-blob-type": "BlockBlob",
                "Content-Length": "5",
                "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==",
                "x-ms-blob-content-type": "text/plain",
                "If-None-Match": "*",
            },
        ),
        (
            "GET",
            "/acct/c",
            [
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", "a/b c/"),
                ("maxresults", "5000"),
                ("include", "metadata"),
            ],
            {"Content-Length": "0"},
        ),
        ("PUT", "/acct/c/blob", [("comp", "block"), ("blockid", "MDAwMDAwMDE=")], {"Content-Length": "100"}),
        (
            "PUT",
            "/acct/c/log",
            [("comp", "appendblock")],
            {"x-ms-blob-condition-appendpos": "7", "Content-Length": "3"},
        ),
        ("HEAD", "/devstoreaccount1/devstoreaccount1/c/ü.txt", [], {}),
    ],
)
def test_string_to_sign_matches_the_sdk(method, path, query, headers):
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.transport import HttpRequest
    from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

    headers = {"x-ms-date": "Sat, 28 Nov 2026 01:00:00 GMT", "x-ms-version": "2023-11-03", **headers}
    url = "http://127.0.0.1:10000" + path
    request = HttpRequest(method, url, headers=dict(headers))
    request.format_parameters(dict(query))
    captured = {}

    class Capture(SharedKeyCredentialPolicy):
        def _add_authorization_header(self, request, string_to_sign):
            captured["string"] = string_to_sign

    Capture("acct", "a2V5").on_request(PipelineRequest(request, PipelineContext(None)))
    assert shared_key_string_to_sign("acct", method, path, query, headers) == captured["string"]
