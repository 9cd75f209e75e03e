"""The portal's pages: an ASGI app over services/, with a token every request must carry.

The token comes in the URL printed at start (``?token=...``, as Jupyter does) and is then kept in a
cookie. The one write action, terminate, also needs a same-origin request. No account key reaches
the browser: Azure downloads are the SAS URLs `job file list` gives, local files are served here.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import mimetypes
import os
import threading
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from batchai_cli import ids
from batchai_cli.errors import BatchAIError, NotFound, UsageError

COOKIE = "batchai_portal_token"
STATES = ("queued", "running", "terminating", "succeeded", "failed")
SECRET_WORDS = ("key", "secret", "password", "token", "sas", "connectionstring", "credential")
_templates = Environment(loader=PackageLoader("batchai_cli.web", "templates"), autoescape=select_autoescape())
_templates.filters["group"] = ids.resource_group_of


def _session():
    from batchai_cli.services import open_session

    return open_session()


def redact(value):
    """The job as submitted, with every secret-looking value replaced (keys, SAS, passwords)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            flat = key.lower().replace("_", "")
            if any(word in flat for word in SECRET_WORDS) and not isinstance(item, (dict, list)):
                out[key] = "<redacted>" if item not in (None, "") else item
            elif key == "secrets" and isinstance(item, list):
                out[key] = [{**s, "value": "<redacted>"} if isinstance(s, dict) else s for s in item]
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and ("sig=" in value or "AccountKey=" in value):
        return "<redacted>"
    return value


def _duration(info: dict | None) -> str:
    if not info or not info.get("startTime"):
        return ""
    start = datetime.fromisoformat(info["startTime"].replace("Z", "+00:00"))
    end_text = info.get("endTime")
    end = datetime.fromisoformat(end_text.replace("Z", "+00:00")) if end_text else datetime.now(start.tzinfo)
    seconds = int((end - start).total_seconds())
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _page(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context), status_code=status)


def _job_rid(request: Request):
    p = request.path_params
    sub = ids.check_subscription(_subscription())
    return ids.workspace_id(sub, p["group"], p["workspace"]).child("experiment", p["experiment"]).child("job", p["job"])


def _subscription() -> str:
    from batchai_cli import settings

    return settings.subscription_id()


def _job_path(rid) -> str:
    return f"/jobs/{rid.resource_group}/{rid.get('workspace')}/{rid.get('experiment')}/{rid.name}"


async def index(request: Request) -> Response:
    def read():
        from batchai_cli.services import clusters, experiments, workspaces

        session = _session()
        try:
            rows = []
            for ws in workspaces.list_workspaces(session):
                rid = ids.parse(ws["id"], expect="workspace")
                rows.append(
                    {
                        "workspace": ws,
                        "experiments": experiments.list_experiments(session, rid),
                        "clusters": clusters.list_clusters(session, rid),
                    }
                )
            return rows
        finally:
            session.close()

    return _page("index.html", rows=await asyncio.to_thread(read))


async def job_list(request: Request) -> Response:
    from batchai_cli.services import joblist

    group, workspace = request.path_params["group"], request.path_params["workspace"]
    query = request.query_params
    experiment, state = query.get("experiment") or None, query.get("state") or None
    if state and state not in STATES:
        raise UsageError(f"Unknown state {state!r}; one of: {', '.join(STATES)}.")
    try:
        page = int(query.get("page", "1"))
    except ValueError:
        raise UsageError(f"page must be a number, not {query.get('page')!r}.") from None

    def read():
        session = _session()
        try:
            ws = ids.workspace_id(session.subscription, group, workspace)
            result = joblist.list_jobs_page(session, ws, experiment=experiment, execution_state=state, page=page)
            from batchai_cli.services.experiments import list_experiments

            result["experiments"] = [e["name"] for e in list_experiments(session, ws)]
            return result
        finally:
            session.close()

    result = await asyncio.to_thread(read)
    for job in result["jobs"]:
        job["_path"] = _job_path(ids.parse(job["id"], expect="job"))
        job["_duration"] = _duration(job.get("executionInfo"))
        job["_cluster"] = ((job.get("cluster") or {}).get("id") or "").rsplit("/", 1)[-1]

    def link(**change):
        params = {"experiment": experiment or "", "state": state or "", "page": result["page"], **change}
        return "?" + urlencode({k: v for k, v in params.items() if v})

    return _page(
        "jobs.html",
        group=group,
        workspace=workspace,
        experiment=experiment,
        state=state,
        states=STATES,
        link=link,
        **result,
    )


async def job_page(request: Request) -> Response:
    from batchai_cli.services import files, jobs

    rid = _job_rid(request)
    directory = request.query_params.get("d", files.STDOUTERR)
    path = request.query_params.get("p", ".")

    def read():
        session = _session()
        try:
            job = jobs.get_job(session, rid)
            listing = files.list_files(session, rid, output_directory_id=directory, path=path, expiry_minutes=60)
            submitted = session.state.get_private(rid).get("properties") or {}
            return job, listing, submitted
        finally:
            session.close()

    job, listing, submitted = await asyncio.to_thread(read)
    base = _job_path(rid)
    for item in listing:
        url = item.get("downloadUrl") or ""
        if url.startswith("file://"):
            # A local folder's file:// URL means nothing to a browser: the portal serves it.
            sub = item["name"] if path in (".", "") else f"{path.strip('/')}/{item['name']}"
            item["downloadUrl"] = f"{base}/download?" + urlencode({"d": directory, "p": sub})
        if item["fileType"] == "directory":
            sub = item["name"] if path in (".", "") else f"{path.strip('/')}/{item['name']}"
            item["_open"] = "?" + urlencode({"d": directory, "p": sub})
    directories = [files.STDOUTERR, *(o["id"] for o in job.get("outputDirectories") or [])]
    return _page(
        "job.html",
        job=job,
        base=base,
        info=job.get("executionInfo") or {},
        duration=_duration(job.get("executionInfo")),
        listing=listing,
        directory=directory,
        directories=directories,
        path=path,
        submitted=json.dumps(redact(submitted), indent=2, sort_keys=True),
        log_name=files.main_log_name(submitted),
        can_terminate=job["executionState"] in ("queued", "running"),
    )


async def download(request: Request) -> Response:
    """A file of a job's local-folder directory, read through its Store (paths confined by locate)."""
    from batchai_cli.services import files
    from batchai_cli.storage.base import clean_path

    rid = _job_rid(request)
    directory = request.query_params.get("d", files.STDOUTERR)
    raw = request.query_params.get("p", "")
    try:
        sub = clean_path(raw)
    except ValueError:
        raise UsageError(f"'..' is not allowed in a path: {raw!r}.") from None
    folder, _, name = sub.rpartition("/")

    def read():
        session = _session()
        try:
            located = files.locate(session, rid, output_directory_id=directory, path=folder or ".")
            key = f"{located.key.rstrip('/')}/{name}" if located.key else name
            try:
                return located.store.read_range(key, 0, None)
            except (FileNotFoundError, IsADirectoryError):
                raise NotFound(f"No such file: {sub}") from None
        finally:
            session.close()

    data = await asyncio.to_thread(read)
    return Response(data, media_type=_media_type(name), headers={"Content-Disposition": f'inline; filename="{name}"'})


async def log_events(request: Request) -> Response:
    """Server-sent events of one file as `job file stream` follows it (the same FileStream): each
    event's id is the byte offset reached, so a reconnecting browser resumes where it was."""
    from batchai_cli.services import files

    rid = _job_rid(request)
    name = request.query_params.get("f", "stdout.txt")
    directory = request.query_params.get("d", files.STDOUTERR)
    resume = request.headers.get("last-event-id") or request.query_params.get("offset") or "0"
    try:
        offset = max(0, int(resume))
    except ValueError:
        offset = 0
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def pump():
        session = _session()
        try:
            stream = files.FileStream(session, rid, name, output_directory_id=directory, offset=offset)
            for kind, value in stream:
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except BatchAIError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc.message))
        finally:
            session.close()
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, daemon=True, name="portal-log").start()

    async def events():
        try:
            yield "retry: 1000\n\n"
            while True:
                item = await queue.get()
                if item is None:
                    return
                kind, value = item
                if kind == "text":
                    data = json.dumps(value.text if hasattr(value, "text") else value[0])
                    yield f"id: {value.offset if hasattr(value, 'offset') else value[1]}\nevent: text\ndata: {data}\n\n"
                elif kind == "end":
                    yield f"event: end\ndata: {json.dumps(value.get('executionState'))}\n\n"
                elif kind == "error":
                    yield f"event: failure\ndata: {json.dumps(value)}\n\n"
                elif kind == "found":
                    yield f"event: found\ndata: {value['offset']}\n\n"
                else:
                    yield f"event: {kind}\ndata: {json.dumps(str(value))}\n\n"
        finally:
            stop.set()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def terminate(request: Request) -> Response:
    from batchai_cli.services import jobs

    if not _same_origin(request):
        return _page("error.html", 403, message="Refused: terminate must come from the portal's own page.")
    rid = _job_rid(request)

    def act():
        session = _session()
        try:
            jobs.terminate_job(session, rid)
        finally:
            session.close()

    await asyncio.to_thread(act)
    return RedirectResponse(_job_path(rid), status_code=303)


async def storage_page(request: Request) -> Response:
    """The containers, shares and folders the job mounts, and one folder of one of them."""
    from batchai_cli.services import volumes

    rid = _job_rid(request)
    index_text, path = request.query_params.get("v"), request.query_params.get("p", ".")

    def read():
        session = _session()
        try:
            listed = volumes.list_job_volumes(session, rid)
            listing = None
            if index_text is not None:
                try:
                    index = int(index_text)
                except ValueError:
                    raise UsageError(f"v must be a volume number, not {index_text!r}.") from None
                listing = volumes.list_volume_files(session, rid, index, path=path)
            return listed, listing
        finally:
            session.close()

    listed, listing = await asyncio.to_thread(read)
    base = _job_path(rid)
    for item in listing or []:
        sub = item["name"] if path in (".", "") else f"{path.strip('/')}/{item['name']}"
        if item["fileType"] == "directory":
            item["_open"] = "?" + urlencode({"v": index_text, "p": sub})
        elif (item.get("downloadUrl") or "").startswith("file://"):
            item["downloadUrl"] = f"{base}/storage/download?" + urlencode({"v": index_text, "p": sub})
    return _page(
        "storage.html", base=base, job_name=rid.name, volumes=listed, listing=listing, current=index_text, path=path
    )


async def storage_download(request: Request) -> Response:
    """A file of one of the job's local-folder volumes (Azure volumes link to SAS URLs instead)."""
    from batchai_cli.services import volumes
    from batchai_cli.storage.base import clean_path

    rid = _job_rid(request)
    raw = request.query_params.get("p", "")
    try:
        index, sub = int(request.query_params.get("v", "")), clean_path(raw)
    except ValueError:
        raise UsageError(f"Give a volume number and a path without '..', not {raw!r}.") from None
    folder, _, name = sub.rpartition("/")

    def read():
        session = _session()
        try:
            rows = volumes.list_volume_files(session, rid, index, path=folder or ".")
            if not any(row["name"] == name and row["fileType"] == "file" for row in rows):
                raise NotFound(f"No such file: {sub}")
            return volumes.open_volume(session, rid, index).read_range(sub, 0, None)
        finally:
            session.close()

    data = await asyncio.to_thread(read)
    return Response(data, media_type=_media_type(name), headers={"Content-Disposition": f'inline; filename="{name}"'})


def _media_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or name.endswith((".log", ".txt")):
        kind = "text/plain; charset=utf-8"
    return kind


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host")


class TokenGate:
    """Every request needs the token: ``?token=`` once (then a cookie) or the cookie itself."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given, self.token):
            rest = {k: v for k, v in request.query_params.items() if k != "token"}
            target = request.url.path + ("?" + urlencode(rest) if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return await response(scope, receive, send)
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(cookie, self.token):
            response = _page(
                "error.html", 403, message="This portal needs its token: open the URL `batchai portal` printed."
            )
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


async def _error_page(_request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, UsageError) else 500
    return _page("error.html", status, message=exc.message, hint=getattr(exc, "hint", None))


def build_app(token: str):
    """The portal as an ASGI app; `token` is what every request must present."""
    job = "/jobs/{group}/{workspace}/{experiment}/{job}"
    starlette = Starlette(
        routes=[
            Route("/", index),
            Route("/jobs/{group}/{workspace}", job_list),
            Route(job, job_page),
            Route(job + "/download", download),
            Route(job + "/log", log_events),
            Route(job + "/storage", storage_page),
            Route(job + "/storage/download", storage_download),
            Route(job + "/terminate", terminate, methods=["POST"]),
        ],
        exception_handlers={BatchAIError: _error_page},
    )
    return TokenGate(starlette, token)


def new_token() -> str:
    return os.urandom(24).hex()
