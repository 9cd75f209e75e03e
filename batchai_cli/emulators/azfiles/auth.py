"""Request authentication (SharedKey, SAS) and SAS permission checks, as the storage service does them.

References: "Authorize with Shared Key" and "Create a service SAS" / "Create an account SAS" in the
Azure Storage REST documentation; the client side is azure/storage/fileshare/_shared/authentication.py
and _shared_access_signature.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import cmp_to_key

from .errors import StorageError
from .request import Request, split_query
from .util import TICKS_PER_SECOND, iso_to_ticks, now_ticks, rfc1123_to_ticks, ticks_to_rfc1123

# The service orders canonicalized x-ms- headers with a Windows-style string comparison (hyphens are
# ignored on the first pass), not by code point; these weight tables reproduce it, as the SDK does.
# fmt: off
_TABLE_LV0 = [
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x71c, 0x0, 0x71f, 0x721, 0x723, 0x725,
    0x0, 0x0, 0x0, 0x72d, 0x803, 0x0, 0x0, 0x733, 0x0, 0xd03, 0xd1a, 0xd1c, 0xd1e,
    0xd20, 0xd22, 0xd24, 0xd26, 0xd28, 0xd2a, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25, 0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51,
    0xe70, 0xe7c, 0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99, 0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9,
    0x0, 0x0, 0x0, 0x743, 0x744, 0x748, 0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25,
    0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51, 0xe70, 0xe7c, 0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99,
    0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9, 0x0, 0x74c, 0x0, 0x750, 0x0,
]
_TABLE_LV4 = [0x0] * 128
_TABLE_LV4[0x27] = 0x8012  # apostrophe
_TABLE_LV4[0x2D] = 0x8212  # hyphen
# fmt: on


def _weight(table: list[int], ch: str) -> int:
    code = ord(ch)
    return table[code] if code < len(table) else code


def _header_compare(lhs: str, rhs: str) -> int:
    tables = (_TABLE_LV0, _TABLE_LV4)
    level, i, j = 0, 0, 0
    while level < len(tables):
        if level == len(tables) - 1 and i != j:
            return -1 if i > j else 1
        w1 = _weight(tables[level], lhs[i]) if i < len(lhs) else 0x1
        w2 = _weight(tables[level], rhs[j]) if j < len(rhs) else 0x1
        if w1 == 0x1 and w2 == 0x1:
            i = j = 0
            level += 1
        elif w1 == w2:
            i += 1
            j += 1
        elif w1 == 0:
            i += 1
        elif w2 == 0:
            j += 1
        else:
            return -1 if w1 < w2 else 1
    return 0


def sign(key: bytes, string_to_sign: str) -> str:
    return base64.b64encode(hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()).decode()


@dataclass
class Sas:
    kind: str  # "service" or "account"
    resource: str  # service SAS: "s" or "f"; account SAS: the srt letters
    permissions: str
    services: str = ""


@dataclass
class Auth:
    scheme: str  # "sharedkey" or "sas"
    sas: Sas | None = None


SHARED_KEY_HEADERS = [
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
]

# Requests signed more than this far from the server clock are refused, as by the service.
MAX_CLOCK_SKEW_TICKS = 15 * 60 * TICKS_PER_SECOND


def canonicalized_headers(req: Request) -> str:
    merged: dict[str, list[str]] = {}
    for name, value in req.x_ms_headers:
        merged.setdefault(name.lower(), []).append(value.strip())
    names = sorted(merged, key=cmp_to_key(_header_compare))
    return "".join(f"{name}:{','.join(merged[name])}\n" for name in names)


def canonicalized_resource(account: str, path: str, raw_query: str) -> str:
    params: dict[str, list[str]] = {}
    for name, value in split_query(raw_query):
        params.setdefault(name.lower(), []).append(value)
    out = f"/{account}{path}"
    for name in sorted(params):
        out += f"\n{name}:{','.join(sorted(params[name]))}"
    return out


def shared_key_strings(req: Request, account: str) -> list[str]:
    """The string-to-sign of the request; more than one when clients may legitimately differ."""
    lines = [req.method]
    for name in SHARED_KEY_HEADERS:
        value = req.header(name) or ""
        if name == "Content-Length" and value == "0":
            value = ""  # since 2015-02-21 a zero length is signed as empty
        if name == "Date" and req.has_header("x-ms-date"):
            value = ""  # x-ms-date takes precedence and the Date line is left empty
        lines.append(value)
    head = "\n".join(lines) + "\n" + canonicalized_headers(req)
    # Path-style URLs (http://127.0.0.1:port/account/share/...) already carry the account name in the
    # path. The Azure SDKs sign "/account" + that path; other clients sign the path without the account
    # segment (as with a host-style URL), which Azurite also accepts.
    candidates = [head + canonicalized_resource(account, req.raw_path, req.raw_query)]
    prefix = f"/{account}"
    if req.raw_path == prefix or req.raw_path.startswith(prefix + "/"):
        trimmed = req.raw_path[len(prefix) :] or "/"
        candidates.append(head + canonicalized_resource(account, trimmed, req.raw_query))
    return candidates


def _auth_failed(detail: str) -> StorageError:
    return StorageError("AuthenticationFailed", details=[("AuthenticationErrorDetail", detail)])


# (share, policy id) -> {"Start": ..., "Expiry": ..., "Permission": ...} or None
PolicyLookup = Callable[[str, str], "dict[str, str] | None"]


def authenticate(req: Request, account: str, key: bytes, policies: PolicyLookup | None = None) -> Auth:
    authorization = req.header("Authorization")
    sas_params = {name: value for name, value in split_query(req.raw_query)}
    if authorization:
        return _shared_key(req, authorization, account, key)
    if "sig" in sas_params:
        return Auth("sas", _verify_sas(req, sas_params, account, key, policies))
    raise StorageError(
        "NoAuthenticationInformation",
        headers=[
            (
                "WWW-Authenticate",
                "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize "
                "resource_id=https://storage.azure.com",
            )
        ],
    )


def _shared_key(req: Request, authorization: str, account: str, key: bytes) -> Auth:
    scheme, _, credentials = authorization.partition(" ")
    if scheme != "SharedKey":
        raise _auth_failed(f"Authorization scheme {scheme!r} is not supported by the emulator.")
    claimed_account, _, signature = credentials.strip().rpartition(":")
    if claimed_account != account:
        raise _auth_failed(f"The account {claimed_account!r} in the Authorization header is not {account!r}.")
    date = req.header("x-ms-date") or req.header("Date")
    if not date:
        raise _auth_failed("Request date header not specified.")
    try:
        skew = abs(now_ticks() - rfc1123_to_ticks(date))
    except (TypeError, ValueError):
        raise _auth_failed(f"Request date header {date!r} is not a valid RFC 1123 date.") from None
    if skew > MAX_CLOCK_SKEW_TICKS:
        raise _auth_failed(f"Request date header too old: '{date}'")
    candidates = shared_key_strings(req, account)
    for string_to_sign in candidates:
        if hmac.compare_digest(sign(key, string_to_sign), signature):
            return Auth("sharedkey")
    raise _auth_failed(
        f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
        f"signature. Server used following string to sign: '{candidates[0]}'."
    )


def _sas_time(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return iso_to_ticks(value)
    except ValueError:
        raise _auth_failed(f"{name} {value!r} is not a valid ISO 8601 time.") from None


def _verify_sas(req: Request, params: dict[str, str], account: str, key: bytes, policies: PolicyLookup | None) -> Sas:
    def p(name: str) -> str:
        return params.get(name, "")

    version = p("sv")
    if not version:
        raise _auth_failed("sv is mandatory.")
    if p("skoid") or p("sktid"):
        raise _auth_failed("User delegation SAS is not supported by the emulator.")
    if p("ss") or p("srt"):
        sas = Sas("account", p("srt"), p("sp"), p("ss"))
        fields = [account, p("sp"), p("ss"), p("srt"), p("st"), p("se"), p("sip"), p("spr"), p("sv")]
        string_to_sign = "\n".join(fields) + "\n"
        if version >= "2020-12-06":
            string_to_sign += p("ses") + "\n"
    elif p("sr") in ("s", "f"):
        sas = Sas("service", p("sr"), p("sp"))
        resource = req.share or ""
        if p("sr") == "f":
            resource = "/".join([resource, *req.segments])
        fields = [
            p("sp"),
            p("st"),
            p("se"),
            f"/file/{account}/{resource}",
            p("si"),
            p("sip"),
            p("spr"),
            p("sv"),
            p("rscc"),
            p("rscd"),
            p("rsce"),
            p("rscl"),
            p("rsct"),
        ]
        string_to_sign = "\n".join(fields)
    else:
        raise _auth_failed(f"sr {p('sr')!r} is not a valid signed resource for the file service.")
    signature = p("sig").replace(" ", "+")
    if not hmac.compare_digest(sign(key, string_to_sign), signature):
        shown = string_to_sign.replace("\n", "\\n")
        raise _auth_failed(f"Signature did not match. String to sign used was {shown}")
    effective = dict(params)
    if p("si"):
        # A stored access policy of the share supplies the fields the token leaves out; a field may
        # not be given in both places.
        policy = policies(req.share or "", p("si")) if policies and sas.kind == "service" else None
        if policy is None:
            raise _auth_failed(f"The stored access policy {p('si')!r} does not exist on the share.")
        for field, name in (("sp", "Permission"), ("st", "Start"), ("se", "Expiry")):
            if policy.get(name):
                if p(field):
                    raise _auth_failed(f"{field} is given both in the SAS and in the stored access policy.")
                effective[field] = policy[name]
        sas.permissions = effective.get("sp", "")
    start, expiry, now = _sas_time(effective, "st"), _sas_time(effective, "se"), now_ticks()
    if expiry is None:
        raise _auth_failed("Signed expiry time (se) is mandatory.")
    if now > expiry or (start is not None and now < start):
        start_text = ticks_to_rfc1123(start) if start is not None else ""
        raise _auth_failed(
            f"Signature not valid in the specified time frame: Start [{start_text}] - "
            f"Expiry [{ticks_to_rfc1123(expiry)}] - Current [{ticks_to_rfc1123(now)}]"
        )
    if p("spr") and "http" not in [s.strip() for s in p("spr").split(",")]:
        raise StorageError("AuthorizationProtocolMismatch")
    if p("sip") and not _ip_allowed(req.client_ip, p("sip")):
        raise StorageError("AuthorizationSourceIPMismatch")
    return sas


def _ip_allowed(client_ip: str, sip: str) -> bool:
    try:
        ip = ipaddress.ip_address(client_ip)
        low, _, high = sip.partition("-")
        return ipaddress.ip_address(low) <= ip <= ipaddress.ip_address(high or low)
    except ValueError:
        return False


# level -> the account SAS resource type letter that covers it. Directory APIs are container-level.
_ACCOUNT_RESOURCE_TYPE = {"service": "s", "share": "c", "directory": "c", "file": "o"}


def authorize(auth: Auth, level: str, permissions: str) -> None:
    """Check that a SAS covers an operation on `level` needing any one of `permissions`."""
    sas = auth.sas
    if sas is None:
        return
    if sas.kind == "account":
        if "f" not in sas.services:
            raise StorageError("AuthorizationServiceMismatch")
        if _ACCOUNT_RESOURCE_TYPE[level] not in sas.resource:
            raise StorageError("AuthorizationResourceTypeMismatch")
    else:
        allowed = ("directory", "file") if sas.resource == "s" else ("file",)
        if level not in allowed:
            raise StorageError("AuthorizationResourceTypeMismatch")
    if not any(ch in sas.permissions for ch in permissions):
        raise StorageError("AuthorizationPermissionMismatch")


def decode_md5(header: str, value: str) -> bytes:
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise StorageError("InvalidMd5", details=[("HeaderName", header), ("HeaderValue", value)])
    return digest
