"""`batchai portal` in headless Chromium: the job list, a running job's stdout growing line by line,
an output file, terminate behind a confirmation, and refusal without the token."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from tests.jobs.conftest import custom, until
from tests.web.conftest import shot_on_failure

JOB = "/jobs/rg/ws/exp/{}"


def _submit(lab, name, command, **more):
    out = lab.tmp / "storage"
    result = lab.submit(name, custom(command, out, **more))
    assert result.code == 0, result.err
    return out


def test_refused_without_token(portal, page, tmp_path):
    with shot_on_failure(page, tmp_path):
        response = page.goto(portal.base + "/jobs/rg/ws")
        assert response.status == 403
        assert "needs its token" in page.inner_text("body")
        page.goto(portal.base + "/?token=wrong")
        assert "needs its token" in page.inner_text("body")
        # A terminate from elsewhere, even with the token's cookie, is refused (no same origin).
        request = urllib.request.Request(
            portal.base + JOB.format("x") + "/terminate",
            method="POST",
            headers={"Cookie": "batchai_portal_token=" + portal.url.split("token=")[1]},
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("terminate without an Origin was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403


def test_job_list_and_output_file(lab, portal, page, tmp_path):
    _submit(
        lab,
        "done",
        "echo hello && echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.txt",
        outputDirectories=[{"id": "MODEL", "pathPrefix": str(lab.tmp / "storage"), "pathSuffix": "model"}],
    )
    assert lab.wait("done").code == 0
    with shot_on_failure(page, tmp_path):
        page.goto(portal.url)  # the token becomes a cookie, and the URL loses it
        assert "token=" not in page.url
        page.click("text=jobs")
        row = page.locator("#jobs tr", has_text="done")
        assert "succeeded" in row.inner_text()
        row.locator("a").click()
        page.wait_for_selector("#log:has-text('hello')")
        page.click("text=MODEL")
        with page.expect_response(lambda r: "/download" in r.url) as response:
            page.click("#files >> text=model.txt")
        assert response.value.status == 200
        assert page.inner_text("body").strip() == "weights"
        # Paths stay inside the job's folders.
        refused = page.goto(portal.base + JOB.format("done") + "/download?d=MODEL&p=../../x")
        assert refused.status == 400


def test_running_job_stdout_grows(lab, portal, page, tmp_path):
    _submit(lab, "live", "for i in $(seq 1 8); do echo line $i; sleep 0.4; done")
    with shot_on_failure(page, tmp_path):
        page.goto(portal.url.replace("/?", JOB.format("live") + "?"))
        page.wait_for_selector("#log:has-text('line 1')")
        seen = []
        for _ in range(200):
            text = page.inner_text("#log")
            if not seen or seen[-1] != text:
                seen.append(text)
            if "line 8" in text:
                break
            time.sleep(0.1)
        assert "line 8" in seen[-1], seen[-1]
        assert len(seen) >= 3, f"stdout did not grow in steps: {seen}"
        assert seen[-1].splitlines() == [f"line {i}" for i in range(1, 9)]
        page.wait_for_selector("#state:has-text('succeeded')")


def test_terminate_after_confirmation(lab, portal, page, tmp_path):
    _submit(lab, "long", "echo started; sleep 120")
    until(lambda: lab.show("long")["executionState"] == "running", what="the job to run")
    with shot_on_failure(page, tmp_path):
        page.goto(portal.url.replace("/?", JOB.format("long") + "?"))
        page.wait_for_selector("#log:has-text('started')")
        dialogs = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.click("#terminate button")
        assert dialogs and "Terminate job long" in dialogs[0]
        assert lab.show("long")["executionState"] == "running"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#terminate button")
        page.wait_for_load_state()
        until(lambda: lab.show("long")["executionState"] == "failed", what="the job to end")
        page.reload()
        assert page.inner_text("#state") == "failed"


def test_storage_browser(lab, portal, page, tmp_path):
    data = lab.tmp / "dataset"
    (data / "train").mkdir(parents=True)
    (data / "train" / "part-0.csv").write_text("x,y\n1,2\n")
    _submit(
        lab,
        "mounted",
        "ls $AZ_BATCHAI_JOB_MOUNT_ROOT/data",
        mountVolumes={"localFolders": [{"relativeMountPath": "data", "path": str(data)}]},
    )
    lab.wait("mounted")
    with shot_on_failure(page, tmp_path):
        page.goto(portal.url.replace("/?", JOB.format("mounted") + "?"))
        page.click("#storage-link")
        page.click("#volumes >> text=$AZ_BATCHAI_JOB_MOUNT_ROOT/data")
        page.click("#files >> text=train/")
        page.click("#files >> text=part-0.csv")
        assert page.inner_text("body").strip() == "x,y\n1,2"
        refused = page.goto(portal.base + JOB.format("mounted") + "/storage/download?v=0&p=../secret")
        assert refused.status == 400
        missing = page.goto(portal.base + JOB.format("mounted") + "/storage?v=7")
        assert missing.status == 404
