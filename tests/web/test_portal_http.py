"""The portal over plain HTTP: what the browser is never sent (keys, passwords), the log stream's
resumption from a byte offset, and UTF-8 split across reads."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

from tests.jobs.conftest import custom

JOB = "/jobs/rg/ws/exp/{}"


def _get(portal, path, headers=None):
    port = int(portal.base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    token = portal.url.split("token=")[1]
    connection.request("GET", path, headers={"Cookie": f"batchai_portal_token={token}", **(headers or {})})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def _events(body: str) -> list[tuple[str, str, str]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields.get("id", ""), fields.get("data", "")))
    return events


def test_no_secret_reaches_the_page(lab, portal):
    key = "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw=="
    properties = custom(
        "echo ok",
        lab.tmp / "storage",
        environmentVariables=[{"name": "PLAIN", "value": "visible-value"}],
        secrets=[{"name": "API_TOKEN", "value": "s3cr3t-value"}],
        mountVolumes={
            "azureFileShares": [
                {
                    "accountName": "acct",
                    "azureFileUrl": "https://acct.file.core.windows.net/share",
                    "credentials": {"accountKey": key},
                    "relativeMountPath": "afs",
                }
            ]
        },
    )
    assert lab.submit("secretive", properties).code == 0
    lab.wait("secretive")
    status, page = _get(portal, JOB.format("secretive"))
    assert status == 200, page
    assert "visible-value" in page
    assert key not in page
    assert "s3cr3t-value" not in page


def test_log_resumes_from_last_event_id_and_keeps_utf8_whole(lab, portal):
    text = "é€😀 line\n" * 3
    script = "import sys; sys.stdout.buffer.write(" + repr(text.encode()) + ")"
    assert lab.submit("utf", custom(f"{sys.executable} -c {json.dumps(script)}", lab.tmp / "storage")).code == 0
    lab.wait("utf")
    status, body = _get(portal, JOB.format("utf") + "/log?f=stdout.txt")
    assert status == 200
    events = _events(body)
    texts = [(ident, json.loads(data)) for kind, ident, data in events if kind == "text"]
    assert "".join(t for _, t in texts) == text
    assert events[-1] == ("end", "", '"succeeded"')
    # A browser that reconnects sends the last id it saw: the stream goes on from that byte.
    middle = len("é€😀 line\n".encode())
    status, body = _get(portal, JOB.format("utf") + "/log?f=stdout.txt", {"Last-Event-ID": str(middle)})
    resumed = "".join(json.loads(data) for kind, _, data in _events(body) if kind == "text")
    assert resumed == "é€😀 line\n" * 2


def test_warns_when_not_on_loopback(home):
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", "portal", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline()
        assert url.startswith("http://0.0.0.0:") and "token=" in url
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "not loopback" in err
