"""What the Azure Blob and Azure Files stores share: a root (container or share) and a sub-path in
one account, reached through the REST client of _rest.py; the one mapping of failed responses to
Python's errors; download SAS URLs; and parallel chunked uploads with bounded memory.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import ClassVar

from batchai_cli.errors import StorageError
from batchai_cli.storage._rest import Response, RestClient, credentials_error
from batchai_cli.storage.base import Progress, Store, clean_path, join_path
from batchai_cli.storage.credentials import StorageCredentials


class AzureStore(Store):
    """A container or share (`root`) and a path inside it (`sub_path`), in one storage account."""

    service: ClassVar[str]
    """The endpoint of the credentials to use: "blob" or "file"."""
    root_kind: ClassVar[str]
    """What the root is called in messages: "container" or "share"."""
    root_missing_code: ClassVar[str]
    """The service's error code for a missing root."""

    def __init__(
        self,
        root: str,
        sub_path: str = "",
        *,
        credentials: StorageCredentials,
        page_size: int,
        block_size: int,
        client: RestClient | None = None,
    ):
        self.root = root
        self.sub_path = clean_path(sub_path)
        self.credentials = credentials
        self.client = client or RestClient(credentials.endpoint(self.service), credentials)
        self.page_size = page_size
        self.block_size = block_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url()!r}, auth={self.credentials.kind})"

    # -- names ----------------------------------------------------------------------------------

    def _name(self, path: str) -> str:
        """The blob or file name (within the root) of a store path."""
        return join_path(self.sub_path, clean_path(path))

    def _relative(self, name: str) -> str:
        return name[len(self.sub_path) + 1 :] if self.sub_path else name

    def _path(self, path: str) -> str:
        """The URL path of a store path."""
        return self.client.path_for(self.root, self._name(path))

    def url(self, path: str = "") -> str:
        return self.client.url_for(self.root, self._name(path))

    # -- errors ---------------------------------------------------------------------------------

    def _error(self, response: Response, path: str = "") -> Exception:
        """The Python error for a failed response about `path` (a store path)."""
        code = response.error_code
        account = self.credentials.account_name or self.client.host
        if code == self.root_missing_code:
            return FileNotFoundError(
                f"The {self.root_kind} '{self.root}' does not exist in storage account '{account}'."
            )
        if response.status == 404:
            return FileNotFoundError(f"No such file or directory: {self.url(path)}")
        if code.endswith("AlreadyExists"):
            return FileExistsError(f"Already exists: {self.url(path)}")
        if response.status in (401, 403):
            return credentials_error(self.credentials, code, account)
        if response.status == 400 and code in ("InvalidResourceName", "OutOfRangeInput", "InvalidUri"):
            name = self._name(path)
            return StorageError(
                f"'{self.root}' is not a valid {self.root_kind} name"
                + (f", or '{name}' is not a valid file name" if name else "")
                + f" ({code}).",
                hint=f"{self.root_kind.capitalize()} names are 3-63 lower-case letters, digits and hyphens.",
            )
        return StorageError(f"The request for {self.url(path)} failed: {response.status} {code}.")

    def _check(self, response: Response, path: str = "") -> Response:
        if not response.ok:
            raise self._error(response, path)
        return response

    # -- download URLs --------------------------------------------------------------------------

    def download_url(self, path: str, *, expiry_minutes: int = 60) -> str:
        url = self.url(path)
        kind = self.credentials.kind
        if kind == "sas":
            return f"{url}?{self.credentials.sas_token}"
        if kind == "anonymous":
            return url
        if kind == "login":
            raise StorageError(
                "A download URL needs a SAS, which --auth-mode login cannot sign here.",
                hint="Give --account-key or --sas-token as well.",
            )
        expiry = datetime.now(timezone.utc) + timedelta(minutes=expiry_minutes)
        return f"{url}?{self._sign_sas(self._name(path), expiry)}"

    def sign_sas(self, path: str, *, permissions: str, expiry: datetime) -> str:
        """A SAS query for the blob or file at `path` with `permissions` (az's letters: r, a, c, w,
        d, l...) until `expiry`, signed with the account key. StorageError without a key."""
        if self.credentials.kind != "key":
            raise StorageError(
                "Generating a SAS needs the account key.",
                hint="Give --account-key or a connection string with AccountKey.",
            )
        return self._sign_sas(self._name(clean_path(path)), expiry, permissions)

    @abstractmethod
    def _sign_sas(self, name: str, expiry: datetime, permission: str = "rl") -> str:
        """A SAS query for the blob or file `name` (read-only, sp=rl, unless `permission` says
        otherwise), signed with the account key."""

    def wait_out_outages(self, seconds: float) -> None:
        self.client.patience = seconds

    def close(self) -> None:
        self.client.close()


def upload_in_chunks(
    local_path: str | os.PathLike[str],
    chunk_size: int,
    max_concurrency: int,
    send: Callable[[int, int, bytes], None],
    progress: Progress | None,
) -> tuple[bytes, int, int]:
    """Read a file chunk by chunk, hashing it, and send(index, offset, chunk) on up to max_concurrency threads.

    At most max_concurrency + 2 chunks are in memory at once, whatever the file's size. On the
    first error reading stops, chunks not yet sent are dropped, and the error is raised.
    Returns (MD5 of the whole file, its size, the number of chunks).
    """
    max_concurrency = max(1, max_concurrency)
    digest = hashlib.md5()
    total = count = 0
    in_flight = threading.BoundedSemaphore(max_concurrency + 2)
    failed = threading.Event()
    futures: list[Future[None]] = []

    def run(index: int, offset: int, chunk: bytes) -> None:
        try:
            if not failed.is_set():
                send(index, offset, chunk)
                if progress:
                    progress(len(chunk))
        except BaseException:
            failed.set()
            raise
        finally:
            in_flight.release()

    with ThreadPoolExecutor(max_workers=max_concurrency) as pool, open(local_path, "rb") as f:
        while not failed.is_set():
            in_flight.acquire()
            chunk = f.read(chunk_size)
            if not chunk:
                in_flight.release()
                break
            digest.update(chunk)
            futures.append(pool.submit(run, count, total, chunk))
            total += len(chunk)
            count += 1
            del chunk
    for future in futures:
        future.result()
    return digest.digest(), total, count
