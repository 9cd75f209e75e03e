"""HTTP/1.1 front end of the Azure Files emulator and the AzureFilesEmulator handle used by tests."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from .errors import StorageError
from .request import Request
from .service import FileService, Response
from .store import Store

DEFAULT_ACCOUNT = "devstoreaccount1"
# The well-known Azurite / storage emulator key; not a secret.
DEFAULT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SERVER_HEADER = "Windows-Azure-File/1.0 Microsoft-HTTPAPI/2.0"
# Largest request body read into memory: a 4 MiB Put Range plus room for XML bodies.
MAX_BODY_BYTES = 4 * 1024 * 1024 + 64 * 1024


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> bytes:
        """Read the whole body so the connection stays usable for the next request (keep-alive)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.readline(3)
                total += len(data)
                if total <= MAX_BODY_BYTES:
                    chunks.append(data)
            if total > MAX_BODY_BYTES:
                raise _BadRequest("too large")
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if length < 0:
            raise _BadRequest("bad Content-Length")
        if length > MAX_BODY_BYTES:
            remaining = length
            while remaining:
                got = self.rfile.read(min(remaining, 1024 * 1024))
                if not got:
                    break
                remaining -= len(got)
            raise _BadRequest("too large")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        failure = None
        try:
            body = self._read_body()
        except _BadRequest as exc:
            # The rest of the stream cannot be trusted: answer, then close.
            self.close_connection = True
            body = b""
            failure = StorageError("RequestBodyTooLarge" if str(exc) == "too large" else "InvalidInput")
        req = Request(
            method=self.command,
            raw_path=split.path or "/",
            raw_query=split.query,
            headers=list(self.headers.items()),
            body=body,
            client_ip=self.client_address[0],
        )
        self._send(self.server.service.handle(req, failure))

    def _send(self, response: Response) -> None:
        self.send_response_only(response.status, response.reason)
        server = next((v for k, v in response.headers if k == "Server"), SERVER_HEADER)
        self.send_header("Server", server)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name != "Server":
                self.send_header(name, value)
        length = response.content_length if response.content_length is not None else len(response.body)
        self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = do_OPTIONS = do_PATCH = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: FileService) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # type: ignore[override]
        # A client that hangs up mid-response is not an emulator failure worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections, so that a stopped emulator is really unreachable."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class AzureFilesEmulator:
    """An Azure Files REST endpoint on loopback, served from a folder, in a background thread."""

    def __init__(
        self,
        root: Path,
        account_name: str = DEFAULT_ACCOUNT,
        account_key: str = DEFAULT_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.root = Path(root)
        self.account_name = account_name
        self.account_key = account_key
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"FileEndpoint={self.endpoint};"
        )

    def start(self) -> AzureFilesEmulator:
        if self._server is not None:
            return self
        self._store = Store(self.root)
        service = FileService(self._store, self.account_name, self.account_key, lambda: self.endpoint)
        self._server = _Server((self.host, self.port), service)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"azfiles-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._store is not None:
            with self._store.lock:
                self._store.close()
        self._server = self._thread = self._store = None

    def __enter__(self) -> AzureFilesEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
