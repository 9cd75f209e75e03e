"""The parsed form of one HTTP request, as the handlers and the authenticator see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass
class Request:
    method: str
    raw_path: str  # as sent on the wire (percent-encoded), used by SharedKey signing
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    account: str = ""
    share: str | None = None
    segments: list[str] = field(default_factory=list)  # decoded path below the share, as sent
    names: list[str] = field(default_factory=list)  # the same path as stored (trailing dots dropped)
    query: dict[str, str] = field(default_factory=dict)  # lowercased names, decoded values
    version: str = ""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        values = [v for k, v in self.headers if k.lower() == lname]
        return ",".join(values) if values else None

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def x_ms_headers(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k.lower().startswith("x-ms-")]

    @property
    def metadata(self) -> list[list[str]]:
        return [[k[len("x-ms-meta-") :], v] for k, v in self.headers if k.lower().startswith("x-ms-meta-")]


def split_query(raw_query: str) -> list[tuple[str, str]]:
    """Query pairs with percent-decoding but without '+' -> ' ', as the storage SDKs sign them."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs
