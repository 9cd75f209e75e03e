"""The Azure Files REST operations: routing, validation and responses, independent of the HTTP plumbing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import traceback
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from . import xmlbody
from .auth import Auth, authenticate, authorize, decode_md5
from .errors import StorageError, header_error, query_error
from .request import Request, split_query
from .store import ROOT_ID, Resolved, Store
from .util import (
    add_range,
    check_path_segment,
    clip_ranges,
    etag_for,
    is_valid_share_name,
    iso_to_ticks,
    now_ticks,
    parse_range,
    remove_range,
    ticks_to_iso,
    ticks_to_rfc1123,
    version_at_least,
)

DEFAULT_VERSION = "2025-11-05"
MAX_RANGE_BYTES = 4 * 1024 * 1024
MAX_FILE_BYTES = 4 * 1024**4
MAX_LIST_RESULTS = 5000
# The Python SDK asks for up to 4 MiB ranges with x-ms-range-get-content-md5; the service allows 4 MiB.
MAX_MD5_RANGE_BYTES = 4 * 1024 * 1024

_METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ATTRIBUTE_ORDER = [
    "ReadOnly",
    "Hidden",
    "System",
    "None",
    "Directory",
    "Archive",
    "Temporary",
    "Offline",
    "NotContentIndexed",
    "NoScrubData",
]
_ATTRIBUTES = {name.lower(): name for name in _ATTRIBUTE_ORDER}
_CONTENT_HEADERS = [
    ("x-ms-content-type", "content_type", "Content-Type"),
    ("x-ms-content-encoding", "content_encoding", "Content-Encoding"),
    ("x-ms-content-language", "content_language", "Content-Language"),
    ("x-ms-cache-control", "cache_control", "Cache-Control"),
    ("x-ms-content-disposition", "content_disposition", "Content-Disposition"),
]
# SAS response-header overrides (rscc, ...) -> the response header they replace.
_SAS_OVERRIDES = {
    "rscc": "Cache-Control",
    "rscd": "Content-Disposition",
    "rsce": "Content-Encoding",
    "rscl": "Content-Language",
    "rsct": "Content-Type",
}
_DEFAULT_SDDL = {
    "dir": "O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;AU)",
    "file": "O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1301bf;;;AU)",
}


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None
    # HEAD replies announce the size of the body a GET would return without sending it.
    content_length: int | None = None


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _bool_header(req: Request, name: str) -> bool | None:
    value = req.header(name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise header_error("InvalidHeaderValue", name, value)
    return value.lower() == "true"


def _int_header(req: Request, name: str, *, low: int, high: int, required: bool = False) -> int | None:
    value = req.header(name)
    if value is None:
        if required:
            raise header_error("MissingRequiredHeader", name)
        return None
    try:
        number = int(value)
    except ValueError:
        raise header_error("InvalidHeaderValue", name, value) from None
    if not low <= number <= high:
        raise header_error("InvalidHeaderValue", name, value)
    return number


def encode_marker(name: str) -> str:
    # The service's continuation tokens: "1!<length>!<base64 of the next name, '=' written as '-'>".
    encoded = base64.b64encode(name.encode("utf-8")).decode().replace("=", "-")
    return f"1!{len(encoded)}!{encoded}"


def decode_marker(marker: str) -> str:
    parts = marker.split("!")
    try:
        if len(parts) != 3 or parts[0] != "1" or int(parts[1]) != len(parts[2]):
            raise ValueError(marker)
        return base64.b64decode(parts[2].replace("-", "="), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        raise query_error("marker", marker, "Invalid marker.") from None


def _sort_key(name: str) -> tuple[str, str]:
    # Azure Files lists case-insensitively (NTFS upcase order), files and directories interleaved.
    return (name.upper(), name)


class FileService:
    def __init__(self, store: Store, account: str, key: str, endpoint: Callable[[], str]) -> None:
        self.store = store
        self.account = account
        self.key = base64.b64decode(key)
        self.endpoint = endpoint
        self.service_properties = ET.fromstring(xmlbody.DEFAULT_SERVICE_PROPERTIES)

    # ---- entry point ----------------------------------------------------------------------------

    def handle(self, req: Request, failure: StorageError | None = None) -> Response:
        """Answer one request; `failure` is a rejection decided by the HTTP layer (e.g. body too large)."""
        request_id = str(uuid.uuid4())
        req.version = req.header("x-ms-version") or DEFAULT_VERSION
        try:
            if failure is not None:
                if not _VERSION_RE.match(req.version):
                    req.version = DEFAULT_VERSION
                raise failure
            self._parse(req)
            auth = authenticate(req, self.account, self.key, self._policy)
            level, permissions, operation = self._route(req)
            authorize(auth, level, permissions)
            response = operation(req, auth)
        except StorageError as error:
            response = self._error_response(req, error, request_id)
        except Exception as exc:  # a bug in the emulator: say so in the response, not just in a log
            traceback.print_exc()
            error = StorageError("InternalError", details=[("ExceptionDetails", f"{type(exc).__name__}: {exc}")])
            response = self._error_response(req, error, request_id)
        common = [("x-ms-request-id", request_id), ("x-ms-version", req.version)]
        client_request_id = req.header("x-ms-client-request-id")
        if client_request_id is not None:
            common.append(("x-ms-client-request-id", client_request_id))
        response.headers = common + response.headers
        return response

    def _policy(self, share: str, policy_id: str) -> dict | None:
        with self.store.lock:
            if not self.store.share_exists(share):
                return None
            acl = self.store.get_share(share).get("acl", [])
        return next((entry for entry in acl if entry["Id"] == policy_id), None)

    def _error_response(self, req: Request, error: StorageError, request_id: str) -> Response:
        headers = [("x-ms-error-code", error.code), *error.headers]
        body = b""
        if req.method != "HEAD":
            headers.append(("Content-Type", "application/xml"))
            body = error.body(request_id, ticks_to_iso(now_ticks()))
        # The service sets the reason phrase to the message text.
        reason = error.message.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
        return Response(error.status, headers, body, reason=reason)

    def _parse(self, req: Request) -> None:
        if not _VERSION_RE.match(req.version):
            raise header_error("InvalidHeaderValue", "x-ms-version", req.version)
        for name, value in _split_query_first(req.raw_query).items():
            req.query[name] = value
        path = unquote(req.raw_path, errors="replace")
        parts = path.split("/")[1:]
        req.account = parts[0] if parts else ""
        if req.account != self.account:
            raise StorageError("InvalidUri")
        rest = parts[1:]
        req.share = rest[0] if rest and rest[0] else None
        req.segments = [s for s in rest[1:] if s != ""]
        if not req.has_header("x-ms-version") and "sv" in req.query:
            req.version = req.query["sv"]

    def _names(self, req: Request) -> list[str]:
        """The path below the share as the service stores it: trailing dots go unless allowed."""
        keep_dots = _bool_header(req, "x-ms-allow-trailing-dot")
        names = []
        for segment in req.segments:
            name = segment if keep_dots else segment.rstrip(".")
            check_path_segment(name)
            names.append(name)
        return names

    # ---- routing --------------------------------------------------------------------------------

    def _route(self, req: Request) -> tuple[str, str, Callable[[Request, Auth], Response]]:
        method, restype, comp = req.method, req.query.get("restype"), req.query.get("comp")
        if req.share is None:
            table = {
                ("GET", "list"): ("service", "l", self.list_shares),
            }
            if restype == "service":
                table = {
                    ("GET", "properties"): ("service", "r", self.get_service_properties),
                    ("PUT", "properties"): ("service", "w", self.set_service_properties),
                }
            elif restype is not None:
                raise query_error("restype", restype)
        else:
            if not is_valid_share_name(req.share):
                raise StorageError("InvalidResourceName")
            req.names = self._names(req)
            if restype == "share":
                if req.names:
                    raise StorageError("InvalidUri")
                table = {
                    ("PUT", None): ("share", "cw", self.create_share),
                    ("GET", None): ("share", "r", self.get_share_properties),
                    ("HEAD", None): ("share", "r", self.get_share_properties),
                    ("DELETE", None): ("share", "d", self.delete_share),
                    ("PUT", "metadata"): ("share", "w", self.set_share_metadata),
                    ("GET", "metadata"): ("share", "r", self.get_share_metadata),
                    ("HEAD", "metadata"): ("share", "r", self.get_share_metadata),
                    ("PUT", "properties"): ("share", "w", self.set_share_properties),
                    ("GET", "stats"): ("share", "r", self.get_share_stats),
                    ("GET", "acl"): ("share", "r", self.get_share_acl),
                    ("HEAD", "acl"): ("share", "r", self.get_share_acl),
                    ("PUT", "acl"): ("share", "w", self.set_share_acl),
                    ("PUT", "filepermission"): ("share", "cw", self.create_permission),
                    ("GET", "filepermission"): ("share", "r", self.get_permission),
                }
            elif restype == "directory":
                table = {
                    ("PUT", None): ("directory", "cw", self.create_directory),
                    ("GET", None): ("directory", "r", self.get_directory_properties),
                    ("HEAD", None): ("directory", "r", self.get_directory_properties),
                    ("DELETE", None): ("directory", "d", self.delete_directory),
                    ("PUT", "metadata"): ("directory", "w", self.set_directory_metadata),
                    ("GET", "metadata"): ("directory", "r", self.get_directory_properties),
                    ("HEAD", "metadata"): ("directory", "r", self.get_directory_properties),
                    ("PUT", "properties"): ("directory", "w", self.set_directory_properties),
                    ("GET", "list"): ("directory", "l", self.list_directory),
                    ("GET", "listhandles"): ("directory", "l", self.list_handles),
                    ("PUT", "forceclosehandles"): ("directory", "w", self.force_close_handles),
                    ("PUT", "rename"): ("directory", "w", self.rename),
                }
            elif restype is None:
                if not req.names:
                    raise StorageError("InvalidUri")
                table = {
                    ("PUT", None): ("file", "cw", self.create_file),
                    ("GET", None): ("file", "r", self.get_file),
                    ("HEAD", None): ("file", "r", self.get_file),
                    ("DELETE", None): ("file", "d", self.delete_file),
                    ("PUT", "range"): ("file", "w", self.put_range),
                    ("GET", "rangelist"): ("file", "r", self.get_range_list),
                    ("PUT", "properties"): ("file", "w", self.set_file_properties),
                    ("PUT", "metadata"): ("file", "w", self.set_file_metadata),
                    ("GET", "metadata"): ("file", "r", self.get_file_metadata),
                    ("HEAD", "metadata"): ("file", "r", self.get_file_metadata),
                    ("PUT", "lease"): ("file", "w", self.lease_file),
                    ("PUT", "copy"): ("file", "w", self.abort_copy),
                    ("GET", "listhandles"): ("file", "l", self.list_handles),
                    ("PUT", "forceclosehandles"): ("file", "w", self.force_close_handles),
                    ("PUT", "rename"): ("file", "w", self.rename),
                }
            else:
                raise query_error("restype", restype)
        found = table.get((method, comp))
        if found is None:
            if any(c == comp for _, c in table):
                raise StorageError("UnsupportedHttpVerb")
            # As recorded (PUT <file>?comp=lease1): the service's front end answers an unknown comp,
            # naming "restype", with its own Server header.
            error = query_error("restype", comp or "")
            error.headers.append(("Server", "Microsoft-HTTPAPI/2.0"))
            raise error
        return found

    # ---- helpers ---------------------------------------------------------------------------------

    def _metadata(self, req: Request) -> list[list[str]]:
        metadata = req.metadata
        seen = set()
        for name, _value in metadata:
            if not _METADATA_NAME.match(name) or name.lower() in seen:
                raise StorageError("InvalidMetadata", details=[("MetadataName", name)])
            seen.add(name.lower())
        return metadata

    @staticmethod
    def _meta_headers(props: dict) -> list[tuple[str, str]]:
        return [(f"x-ms-meta-{k}", v) for k, v in props["metadata"]]

    @staticmethod
    def _stamp(props: dict, ticks: int) -> None:
        props["etag"] = etag_for(ticks)
        props["last_modified"] = ticks

    @staticmethod
    def _etag_headers(props: dict) -> list[tuple[str, str]]:
        return [("ETag", props["etag"]), ("Last-Modified", ticks_to_rfc1123(props["last_modified"]))]

    def _share(self, req: Request) -> dict:
        if not self.store.share_exists(req.share):
            raise StorageError("ShareNotFound")
        return self.store.get_share(req.share)

    def _existing(self, req: Request, kind: str) -> tuple[Resolved, dict]:
        found = self.store.resolve(req.share, req.names)
        if found.kind is None:
            raise StorageError("ResourceNotFound" if found.parent_exists else "ParentNotFound")
        if found.kind != kind:
            raise StorageError("ResourceNotFound")
        return found, self.store.get_node(req.share, found.names, kind)

    def _parent_id(self, share: str, names: list[str]) -> str:
        if len(names) <= 1:
            return ROOT_ID
        return self.store.get_node(share, names[:-1], "dir")["file_id"]

    def _smb_headers(self, req: Request, share: str, names: list[str], props: dict) -> list[tuple[str, str]]:
        if not version_at_least(req.version, "2019-02-02"):
            return []
        return [
            ("x-ms-file-attributes", props["attributes"]),
            ("x-ms-file-creation-time", ticks_to_iso(props["creation_time"])),
            ("x-ms-file-last-write-time", ticks_to_iso(props["last_write_time"])),
            ("x-ms-file-change-time", ticks_to_iso(props["change_time"])),
            ("x-ms-file-permission-key", props["permission_key"] or self._default_key(share, props["kind"])),
            ("x-ms-file-id", props["file_id"]),
            ("x-ms-file-parent-id", self._parent_id(share, names) if names else ROOT_ID),
        ]

    def _permission_key(self, share: str, sddl: str) -> str:
        key = f"{_hash64(sddl)}*{_hash64(share)}"
        if sddl not in _DEFAULT_SDDL.values():
            self.store.put_permission(share, key, sddl)
        return key

    @staticmethod
    def _default_key(share: str, kind: str) -> str:
        return f"{_hash64(_DEFAULT_SDDL[kind])}*{_hash64(share)}"

    def _lookup_permission(self, share: str, key: str) -> str | None:
        for sddl in _DEFAULT_SDDL.values():
            if key == f"{_hash64(sddl)}*{_hash64(share)}":
                return sddl
        return self.store.get_permission(share, key)

    def _apply_smb(self, req: Request, share: str, props: dict, ticks: int, *, creating: bool) -> None:
        kind = props["kind"]
        if creating and "2019-02-02" <= req.version < "2021-06-08":
            # Between these versions the SMB properties were mandatory on create.
            for name in ("x-ms-file-attributes", "x-ms-file-creation-time", "x-ms-file-last-write-time"):
                if not req.has_header(name):
                    raise header_error("MissingRequiredHeader", name)
            if not (req.has_header("x-ms-file-permission") or req.has_header("x-ms-file-permission-key")):
                raise header_error("MissingRequiredHeader", "x-ms-file-permission")
        attributes = req.header("x-ms-file-attributes")
        if attributes is not None and attributes.lower() != "preserve":
            props["attributes"] = self._attributes(attributes, kind, creating)
        for header, key in (
            ("x-ms-file-creation-time", "creation_time"),
            ("x-ms-file-last-write-time", "last_write_time"),
            ("x-ms-file-change-time", "change_time"),
        ):
            value = req.header(header)
            if value is None or value.lower() in ("now", "preserve"):
                if key == "change_time" and creating and value is None:
                    # As recorded: a new item's change time is its (possibly client-set) last write time.
                    props[key] = props["last_write_time"]
                elif creating or key == "change_time" or (value or "").lower() == "now":
                    props[key] = ticks
                continue
            try:
                props[key] = iso_to_ticks(value)
            except ValueError:
                raise header_error("InvalidHeaderValue", header, value) from None
        permission = req.header("x-ms-file-permission")
        permission_key = req.header("x-ms-file-permission-key")
        if permission is not None and permission_key is not None:
            raise header_error("InvalidHeaderValue", "x-ms-file-permission-key", permission_key)
        if permission_key is not None:
            if self._lookup_permission(share, permission_key) is None:
                raise header_error("InvalidHeaderValue", "x-ms-file-permission-key", permission_key)
            props["permission_key"] = permission_key
        elif permission is not None and permission.lower() == "inherit":
            props["permission_key"] = self._default_key(share, kind)
        elif permission is not None and permission.lower() != "preserve":
            if len(permission.encode()) > 8 * 1024:
                raise header_error("InvalidHeaderValue", "x-ms-file-permission", permission)
            if req.header("x-ms-file-permission-format") == "binary":
                permission = base64.b64encode(base64.b64decode(permission)).decode()
            props["permission_key"] = self._permission_key(share, permission)
        elif creating or not props.get("permission_key"):
            props["permission_key"] = self._default_key(share, kind)

    @staticmethod
    def _attributes(value: str, kind: str, creating: bool) -> str:
        names = set()
        for part in value.split("|"):
            canonical = _ATTRIBUTES.get(part.strip().lower())
            if canonical is None:
                raise header_error("InvalidHeaderValue", "x-ms-file-attributes", value)
            names.add(canonical)
        names.discard("None")
        names.discard("Directory")
        if kind == "dir":
            names.add("Directory")
        elif not names:
            # New files get the Archive bit, as NTFS does; clearing all attributes later leaves None.
            names.add("Archive" if creating else "None")
        return " | ".join(a for a in _ATTRIBUTE_ORDER if a in names)

    def _check_lease(self, req: Request, props: dict, *, write: bool) -> None:
        lease = props.get("lease")
        lease_id = req.header("x-ms-lease-id")
        if lease:
            if lease_id is None:
                if write:
                    raise StorageError("LeaseIdMissing")
            elif lease_id.lower() != lease.lower():
                raise StorageError("LeaseIdMismatchWithFileOperation")
        elif lease_id is not None:
            raise StorageError("LeaseNotPresentWithFileOperation")

    # ---- service --------------------------------------------------------------------------------

    def list_shares(self, req: Request, auth: Auth) -> Response:
        prefix = req.query.get("prefix")
        marker = req.query.get("marker")
        max_results = self._max_results(req)
        include = {i.strip().lower() for i in req.query.get("include", "").split(",") if i.strip()}
        unknown = include - {"metadata", "snapshots", "deleted"}
        if unknown:
            raise query_error("include", req.query["include"])
        with self.store.lock:
            names = [n for n in self.store.list_shares() if n.startswith(prefix or "")]
            if marker:
                after = marker.rsplit("/", 1)[-1]
                names = [n for n in names if n >= after]
            limit = max_results or MAX_LIST_RESULTS
            page, rest = names[:limit], names[limit:]
            shares = [(n, self.store.get_share(n)) for n in page]
        next_marker = f"/{self.account}/{rest[0]}" if rest else ""
        body = xmlbody.share_list(
            self.endpoint() + "/",
            prefix=prefix,
            marker=marker,
            max_results=max_results,
            shares=shares,
            next_marker=next_marker,
            include_metadata="metadata" in include,
            version=req.version,
        )
        return Response(200, [("Content-Type", "application/xml")], body)

    def _max_results(self, req: Request) -> int | None:
        value = req.query.get("maxresults")
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise query_error("maxresults", value) from None
        if number < 1:
            raise query_error("maxresults", value, code="OutOfRangeQueryParameterValue")
        return min(number, MAX_LIST_RESULTS)

    def get_service_properties(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            body = xmlbody.render_element(self.service_properties)
        return Response(200, [("Content-Type", "application/xml")], xmlbody.document(body))

    def set_service_properties(self, req: Request, auth: Auth) -> Response:
        try:
            given = ET.fromstring(req.body)
        except ET.ParseError:
            raise StorageError("InvalidXmlDocument") from None
        if given.tag != "StorageServiceProperties":
            raise StorageError("InvalidXmlDocument")
        with self.store.lock:
            # Settings left out of the request keep their values, as with the service.
            for child in given:
                current = self.service_properties.find(child.tag)
                if current is None:
                    self.service_properties.append(child)
                else:
                    self.service_properties[list(self.service_properties).index(current)] = child
        return Response(202)

    # ---- shares ---------------------------------------------------------------------------------

    def create_share(self, req: Request, auth: Auth) -> Response:
        quota = _int_header(req, "x-ms-share-quota", low=1, high=102400) or 5120
        tier = req.header("x-ms-access-tier") or "TransactionOptimized"
        if tier not in ("TransactionOptimized", "Hot", "Cool", "Premium"):
            raise header_error("InvalidHeaderValue", "x-ms-access-tier", tier)
        metadata = self._metadata(req)
        with self.store.lock:
            ticks = self.store.tick()
            props = self.store.new_share_props(ticks, quota=quota, metadata=metadata, access_tier=tier)
            self.store.create_share(req.share, props)
        return Response(201, self._etag_headers(props))

    def get_share_properties(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            props = self._share(req)
        headers = [*self._meta_headers(props), *self._etag_headers(props)]
        headers.append(("x-ms-share-quota", str(props["quota"])))
        if version_at_least(req.version, "2019-12-12"):
            headers += [
                ("x-ms-access-tier", props["access_tier"]),
                ("x-ms-access-tier-change-time", ticks_to_rfc1123(props["access_tier_change_time"])),
                ("x-ms-lease-state", "available"),
                ("x-ms-lease-status", "unlocked"),
                ("x-ms-enabled-protocols", "SMB"),
            ]
        headers += [("x-ms-has-immutability-policy", "false"), ("x-ms-has-legal-hold", "false")]
        headers.append(("Vary", "Origin"))
        return Response(200, headers)

    def delete_share(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            self._share(req)
            self.store.delete_share(req.share)
        return Response(202)

    def set_share_metadata(self, req: Request, auth: Auth) -> Response:
        metadata = self._metadata(req)
        with self.store.lock:
            props = self._share(req)
            props["metadata"] = metadata
            self._stamp(props, self.store.tick())
            self.store.put_share(req.share, props)
        return Response(200, self._etag_headers(props))

    def get_share_metadata(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            props = self._share(req)
        return Response(200, [*self._meta_headers(props), *self._etag_headers(props)])

    def set_share_properties(self, req: Request, auth: Auth) -> Response:
        quota = _int_header(req, "x-ms-share-quota", low=1, high=102400)
        tier = req.header("x-ms-access-tier")
        if tier is not None and tier not in ("TransactionOptimized", "Hot", "Cool", "Premium"):
            raise header_error("InvalidHeaderValue", "x-ms-access-tier", tier)
        with self.store.lock:
            props = self._share(req)
            ticks = self.store.tick()
            if quota is not None:
                props["quota"] = quota
            if tier is not None and tier != props["access_tier"]:
                props["access_tier"] = tier
                props["access_tier_change_time"] = ticks
            self._stamp(props, ticks)
            self.store.put_share(req.share, props)
        return Response(200, self._etag_headers(props))

    def get_share_stats(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            props = self._share(req)
            usage = self.store.share_usage(req.share)
        headers = [("Content-Type", "application/xml"), *self._etag_headers(props)]
        return Response(200, headers, xmlbody.share_stats(usage))

    def get_share_acl(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            props = self._share(req)
        headers = [("Content-Type", "application/xml"), *self._etag_headers(props)]
        return Response(200, headers, xmlbody.signed_identifiers(props.get("acl", [])))

    def set_share_acl(self, req: Request, auth: Auth) -> Response:
        acl = []
        if req.body.strip():
            try:
                root = ET.fromstring(req.body)
            except ET.ParseError:
                raise StorageError("InvalidXmlDocument") from None
            for identifier in root.findall("SignedIdentifier"):
                entry = {"Id": identifier.findtext("Id") or ""}
                policy = identifier.find("AccessPolicy")
                for name in ("Start", "Expiry", "Permission"):
                    value = policy.findtext(name) if policy is not None else None
                    if value:
                        entry[name] = value
                acl.append(entry)
        if len(acl) > 5:
            raise StorageError("InvalidXmlDocument")
        with self.store.lock:
            props = self._share(req)
            props["acl"] = acl
            self._stamp(props, self.store.tick())
            self.store.put_share(req.share, props)
        return Response(200, self._etag_headers(props))

    def create_permission(self, req: Request, auth: Auth) -> Response:
        try:
            permission = json.loads(req.body or b"{}")["permission"]
        except (ValueError, KeyError, TypeError):
            raise StorageError("InvalidInput") from None
        with self.store.lock:
            self._share(req)
            key = self._permission_key(req.share, permission)
        return Response(201, [("x-ms-file-permission-key", key)])

    def get_permission(self, req: Request, auth: Auth) -> Response:
        key = req.header("x-ms-file-permission-key")
        if key is None:
            raise header_error("MissingRequiredHeader", "x-ms-file-permission-key")
        with self.store.lock:
            self._share(req)
            permission = self._lookup_permission(req.share, key)
        if permission is None:
            raise header_error("InvalidHeaderValue", "x-ms-file-permission-key", key)
        body = json.dumps({"permission": permission, "format": "sddl"}).encode()
        return Response(200, [("Content-Type", "application/json")], body)

    # ---- directories ----------------------------------------------------------------------------

    def create_directory(self, req: Request, auth: Auth) -> Response:
        metadata = self._metadata(req)
        with self.store.lock:
            found = self.store.resolve(req.share, req.names)
            if not found.parent_exists:
                raise StorageError("ParentNotFound")
            if found.kind is not None:
                raise StorageError("ResourceAlreadyExists")
            ticks = self.store.tick()
            props = self.store.new_node("dir", ticks)
            props["metadata"] = metadata
            self._apply_smb(req, req.share, props, ticks, creating=True)
            names = [*found.names, req.names[-1]]
            try:
                (found.path / req.names[-1]).mkdir()
            except FileExistsError:
                raise StorageError("ResourceAlreadyExists") from None
            self.store.forget_listing(found.path)
            self.store.put_node(req.share, names, props)
            headers = [
                *self._etag_headers(props),
                ("x-ms-request-server-encrypted", "true"),
                *self._smb_headers(req, req.share, names, props),
            ]
        return Response(201, headers)

    def get_directory_properties(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            found, props = self._existing(req, "dir")
            headers = [
                *self._meta_headers(props),
                *self._etag_headers(props),
                # As recorded: the service reports the root directory as not encrypted.
                ("x-ms-server-encrypted", "true" if found.names else "false"),
                *self._smb_headers(req, req.share, found.names, props),
            ]
        return Response(200, headers)

    def delete_directory(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            found, _props = self._existing(req, "dir")
            if not found.names:
                raise StorageError("InvalidUri")
            if any(os.scandir(found.path)):
                raise StorageError("DirectoryNotEmpty")
            found.path.rmdir()
            self.store.forget_listing(found.path.parent)
            self.store.delete_node(req.share, found.names)
        return Response(202)

    def set_directory_metadata(self, req: Request, auth: Auth) -> Response:
        metadata = self._metadata(req)
        with self.store.lock:
            found, props = self._existing(req, "dir")
            props["metadata"] = metadata
            self._stamp(props, self.store.tick())
            self.store.put_node(req.share, found.names, props)
        return Response(200, [*self._etag_headers(props), ("x-ms-request-server-encrypted", "true")])

    def set_directory_properties(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            found, props = self._existing(req, "dir")
            ticks = self.store.tick()
            self._apply_smb(req, req.share, props, ticks, creating=False)
            self._stamp(props, ticks)
            self.store.put_node(req.share, found.names, props)
            headers = [
                *self._etag_headers(props),
                ("x-ms-request-server-encrypted", "true"),
                *self._smb_headers(req, req.share, found.names, props),
            ]
        return Response(200, headers)

    def list_directory(self, req: Request, auth: Auth) -> Response:
        if "sharesnapshot" in req.query:
            raise query_error("sharesnapshot", req.query["sharesnapshot"], "Share snapshots are not emulated.")
        prefix = req.query.get("prefix")
        marker = req.query.get("marker")
        max_results = self._max_results(req)
        include = {i.strip().lower() for i in req.query.get("include", "").split(",") if i.strip()}
        if include - {"timestamps", "etag", "attributes", "permissionkey"}:
            raise query_error("include", req.query["include"])
        _bool_header(req, "x-ms-file-extended-info")
        start_key = _sort_key(decode_marker(marker)) if marker else None
        lowered = (prefix or "").lower()
        limit = max_results or MAX_LIST_RESULTS
        with self.store.lock:
            found, props = self._existing(req, "dir")
            entries = sorted(
                (e for e in self.store.entries(req.share, found.names) if e[0].lower().startswith(lowered)),
                key=lambda e: _sort_key(e[0]),
            )
            if start_key is not None:
                entries = [e for e in entries if _sort_key(e[0]) >= start_key]
            page_entries, rest = entries[:limit], entries[limit:]
            # Only the page's own properties are read: a small page of a big folder stays cheap.
            page_props = self.store.props_of(req.share, found.names, [(n, k) for n, k, _ in page_entries])
            page = []
            for (name, kind, size), child in zip(page_entries, page_props, strict=True):
                if "permissionkey" in include and not child.get("permission_key"):
                    child["permission_key"] = self._default_key(req.share, kind)
                page.append((name, kind, size, child))
        extended = version_at_least(req.version, "2020-10-02")
        body = xmlbody.directory_list(
            self.endpoint() + "/",
            share=req.share,
            directory_path=found.rel,
            prefix=prefix,
            marker=marker,
            max_results=max_results,
            directory_id=props["file_id"] if extended else None,
            entries=page,
            include=include,
            next_marker=encode_marker(rest[0][0]) if rest else "",
        )
        return Response(200, [("Content-Type", "application/xml")], body)

    def list_handles(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            self._existing(req, "dir" if req.query.get("restype") == "directory" else "file")
        return Response(200, [("Content-Type", "application/xml")], xmlbody.handle_list())

    def force_close_handles(self, req: Request, auth: Auth) -> Response:
        if not req.has_header("x-ms-handle-id"):
            raise header_error("MissingRequiredHeader", "x-ms-handle-id")
        with self.store.lock:
            self._existing(req, "dir" if req.query.get("restype") == "directory" else "file")
        return Response(200, [("x-ms-number-of-handles-closed", "0"), ("x-ms-number-of-handles-failed", "0")])

    # ---- files ----------------------------------------------------------------------------------

    def _content_settings(self, req: Request, props: dict, *, creating: bool) -> None:
        given = [h for h, _, _ in _CONTENT_HEADERS if req.has_header(h)] + (
            ["x-ms-content-md5"] if req.has_header("x-ms-content-md5") else []
        )
        # Set File Properties replaces all content headers when any is given, and keeps them all when
        # none is (a resize alone keeps Content-Type, as recorded from the service).
        if not creating and not given:
            return
        for header, key, _ in _CONTENT_HEADERS:
            props[key] = req.header(header)
        if creating and props["content_type"] is None:
            props["content_type"] = "application/octet-stream"
        md5 = req.header("x-ms-content-md5")
        props["content_md5"] = base64.b64encode(decode_md5("x-ms-content-md5", md5)).decode() if md5 else None

    def create_file(self, req: Request, auth: Auth) -> Response:
        if req.has_header("x-ms-copy-source"):
            return self.copy_file(req, auth)
        file_type = req.header("x-ms-type")
        if file_type is None:
            raise header_error("MissingRequiredHeader", "x-ms-type")
        if file_type.lower() != "file":
            raise header_error("InvalidHeaderValue", "x-ms-type", file_type)
        size = _int_header(req, "x-ms-content-length", low=0, high=MAX_FILE_BYTES, required=True)
        metadata = self._metadata(req)
        with self.store.lock:
            found = self.store.resolve(req.share, req.names)
            if not found.parent_exists:
                raise StorageError("ParentNotFound")
            if found.kind == "dir":
                raise StorageError("ResourceAlreadyExists")
            ticks = self.store.tick()
            if found.kind == "file":
                old = self.store.get_node(req.share, found.names, "file")
                self._check_lease(req, old, write=True)
                names, path = found.names, found.path
                props = self.store.new_node("file", ticks, file_id=old["file_id"])
                props["lease"] = old.get("lease")
            else:
                names = [*found.names, req.names[-1]]
                path = found.path / req.names[-1]
                props = self.store.new_node("file", ticks)
            props["metadata"] = metadata
            self._content_settings(req, props, creating=True)
            self._apply_smb(req, req.share, props, ticks, creating=True)
            with open(path, "wb") as f:
                f.truncate(size)
            self.store.forget_listing(path.parent)
            self.store.put_node(req.share, names, props)
            headers = [
                *self._etag_headers(props),
                ("x-ms-request-server-encrypted", "true"),
                *self._smb_headers(req, req.share, names, props),
            ]
        return Response(201, headers)

    def copy_file(self, req: Request, auth: Auth) -> Response:
        """Copy File, done at once (status "success") for sources in this account; others are refused."""
        source_url = req.header("x-ms-copy-source") or ""
        parts = [unquote(p) for p in urlsplit(source_url).path.split("/")]
        if len(parts) < 4 or parts[1] != self.account or not all(parts[3:]):
            raise StorageError("CannotVerifyCopySource", "Only files of the emulated account can be copied.")
        source_share, source_names = parts[2], parts[3:]
        for segment in source_names:
            check_path_segment(segment)
        metadata = self._metadata(req)
        with self.store.lock:
            if not self.store.share_exists(source_share):
                raise StorageError("CannotVerifyCopySource", "The specified share does not exist.", status=404)
            source = self.store.resolve(source_share, source_names)
            if source.kind != "file":
                raise StorageError("CannotVerifyCopySource", "The specified resource does not exist.", status=404)
            source_props = self.store.get_node(source_share, source.names, "file")
            found = self.store.resolve(req.share, req.names)
            if not found.parent_exists:
                raise StorageError("ParentNotFound")
            if found.kind == "dir":
                raise StorageError("ResourceAlreadyExists")
            ticks = self.store.tick()
            if found.kind == "file":
                old = self.store.get_node(req.share, found.names, "file")
                self._check_lease(req, old, write=True)
                names, path = found.names, found.path
                props = self.store.new_node("file", ticks, file_id=old["file_id"])
            else:
                names = [*found.names, req.names[-1]]
                path = found.path / req.names[-1]
                props = self.store.new_node("file", ticks)
            for _, key, _ in _CONTENT_HEADERS:
                props[key] = source_props.get(key)
            props["content_md5"] = source_props.get("content_md5")
            props["metadata"] = metadata or source_props["metadata"]
            props["ranges"] = source_props.get("ranges", [])
            # "source" copies an SMB property from the source file; other values apply as on create.
            smb_from_source = {
                "x-ms-file-attributes": "attributes",
                "x-ms-file-creation-time": "creation_time",
                "x-ms-file-last-write-time": "last_write_time",
                "x-ms-file-change-time": "change_time",
            }
            kept = {h: k for h, k in smb_from_source.items() if (req.header(h) or "").lower() == "source"}
            own = _with_headers(req, dropped=set(kept))
            self._apply_smb(own, req.share, props, ticks, creating=True)
            for key in kept.values():
                props[key] = source_props[key]
            if (req.header("x-ms-file-permission-copy-mode") or "").lower() == "source":
                props["permission_key"] = source_props.get("permission_key")
            if source.path != path:
                shutil.copyfile(source.path, path)
            size = os.path.getsize(path)
            copy_id = str(uuid.uuid4())
            props["copy"] = {
                "id": copy_id,
                "source": source_url,
                "progress": f"{size}/{size}",
                "completion_time": ticks,
            }
            self.store.forget_listing(path.parent)
            self.store.put_node(req.share, names, props)
        headers = [*self._etag_headers(props), ("x-ms-copy-id", copy_id), ("x-ms-copy-status", "success")]
        return Response(202, headers)

    def abort_copy(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            self._existing(req, "file")
        raise StorageError("NoPendingCopyOperation")

    def _file_headers(self, req: Request, names: list[str], props: dict) -> list[tuple[str, str]]:
        headers = [*self._meta_headers(props), *self._etag_headers(props)]
        for _, key, header in _CONTENT_HEADERS:
            if props.get(key):
                headers.append((header, props[key]))
        headers.append(("x-ms-type", "File"))
        copy = props.get("copy")
        if copy:
            headers += [
                ("x-ms-copy-completion-time", ticks_to_rfc1123(copy["completion_time"])),
                ("x-ms-copy-id", copy["id"]),
                ("x-ms-copy-progress", copy["progress"]),
                ("x-ms-copy-source", copy["source"]),
                ("x-ms-copy-status", "success"),
            ]
        headers.append(("x-ms-server-encrypted", "true"))
        headers += self._smb_headers(req, req.share, names, props)
        if version_at_least(req.version, "2019-02-02"):
            leased = bool(props.get("lease"))
            headers += [
                ("x-ms-lease-state", "leased" if leased else "available"),
                ("x-ms-lease-status", "locked" if leased else "unlocked"),
            ]
            if leased:
                headers.append(("x-ms-lease-duration", "infinite"))
        return headers

    def get_file(self, req: Request, auth: Auth) -> Response:
        range_header, range_value = "x-ms-range", req.header("x-ms-range")
        if range_value is None:
            range_header, range_value = "Range", req.header("Range")
        want_md5 = _bool_header(req, "x-ms-range-get-content-md5")
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=False)
            size = os.path.getsize(found.path)
            headers = self._file_headers(req, found.names, props)
            if range_value is None:
                if want_md5:
                    raise header_error("InvalidHeaderValue", "x-ms-range-get-content-md5", "true")
                start, end, status = 0, size - 1, 200
            else:
                start, end = parse_range(range_header, range_value, require_end=False)
                if start >= size:
                    raise StorageError("InvalidRange", headers=[("Content-Range", f"bytes */{size}")])
                end = size - 1 if end is None else min(end, size - 1)
                status = 206
                if want_md5 and end - start + 1 > MAX_MD5_RANGE_BYTES:
                    raise StorageError("OutOfRangeInput")
            data = b""
            if req.method == "GET" and size:
                with open(found.path, "rb") as f:
                    f.seek(start)
                    data = f.read(end - start + 1)
        if status == 206:
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
            if props.get("content_md5"):
                headers.append(("x-ms-content-md5", props["content_md5"]))
            if want_md5:
                headers.append(("Content-MD5", base64.b64encode(hashlib.md5(data).digest()).decode()))
        elif props.get("content_md5"):
            headers.append(("Content-MD5", props["content_md5"]))
        if auth.sas is not None:
            overrides = {header: req.query[q] for q, header in _SAS_OVERRIDES.items() if req.query.get(q)}
            headers = [(k, v) for k, v in headers if k not in overrides] + list(overrides.items())
        if req.method == "GET":
            headers.insert(0, ("Accept-Ranges", "bytes"))
            if not any(k == "Content-Type" for k, _ in headers):
                headers.append(("Content-Type", "application/octet-stream"))
            return Response(status, headers, data)
        return Response(200, headers, content_length=size)

    def delete_file(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=True)
            found.path.unlink()
            self.store.forget_listing(found.path.parent)
            self.store.delete_node(req.share, found.names)
        return Response(202)

    def put_range(self, req: Request, auth: Auth) -> Response:
        range_header, range_value = "x-ms-range", req.header("x-ms-range")
        if range_value is None:
            range_header, range_value = "Range", req.header("Range")
        if range_value is None:
            raise header_error("MissingRequiredHeader", "x-ms-range")
        start, end = parse_range(range_header, range_value, require_end=True)
        write = req.header("x-ms-write")
        if write is None:
            raise header_error("MissingRequiredHeader", "x-ms-write")
        write = write.lower()
        if write not in ("update", "clear"):
            raise header_error("InvalidHeaderValue", "x-ms-write", write)
        if req.has_header("x-ms-structured-body"):
            raise header_error("InvalidHeaderValue", "x-ms-structured-body", req.header("x-ms-structured-body"))
        length = end - start + 1
        if write == "update":
            if length > MAX_RANGE_BYTES:
                raise StorageError("RequestBodyTooLarge")
            if len(req.body) != length:
                raise header_error("InvalidHeaderValue", "Content-Length", str(len(req.body)))
        elif req.body:
            raise header_error("InvalidHeaderValue", "Content-Length", str(len(req.body)))
        computed = hashlib.md5(req.body).digest()
        sent_md5 = req.header("Content-MD5")
        if write == "update" and sent_md5 is not None and decode_md5("Content-MD5", sent_md5) != computed:
            raise StorageError(
                "Md5Mismatch",
                details=[
                    ("UserSpecifiedMd5", sent_md5),
                    ("ServerCalculatedMd5", base64.b64encode(computed).decode()),
                ],
            )
        last_write_mode = (req.header("x-ms-file-last-write-time") or "now").lower()
        if last_write_mode not in ("now", "preserve"):
            raise header_error("InvalidHeaderValue", "x-ms-file-last-write-time", last_write_mode)
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=True)
            size = os.path.getsize(found.path)
            if end >= size:
                raise StorageError("InvalidRange")
            with open(found.path, "r+b") as f:
                f.seek(start)
                if write == "update":
                    f.write(req.body)
                else:
                    remaining = length
                    while remaining:
                        chunk = min(remaining, 1024 * 1024)
                        f.write(b"\0" * chunk)
                        remaining -= chunk
            ranges = props.get("ranges", [])
            props["ranges"] = add_range(ranges, start, end) if write == "update" else remove_range(ranges, start, end)
            props["copy"] = None  # the copy properties last only until the file is changed
            ticks = self.store.tick()
            # Put Range moves the SMB write/change times only since 2021-06-08 (which added the
            # x-ms-file-last-write-time mode); the 2019-02-02 recording shows them unchanged.
            if version_at_least(req.version, "2021-06-08"):
                if last_write_mode == "now":
                    props["last_write_time"] = ticks
                props["change_time"] = ticks
            self._stamp(props, ticks)
            self.store.put_node(req.share, found.names, props)
        headers = self._etag_headers(props)
        if write == "update":
            headers += [
                ("Content-MD5", base64.b64encode(computed).decode()),
                ("x-ms-request-server-encrypted", "true"),
            ]
        if version_at_least(req.version, "2021-06-08"):
            headers.append(("x-ms-file-last-write-time", ticks_to_iso(props["last_write_time"])))
        return Response(201, headers)

    def get_range_list(self, req: Request, auth: Auth) -> Response:
        if "prevsharesnapshot" in req.query or "sharesnapshot" in req.query:
            raise query_error("sharesnapshot", req.query.get("sharesnapshot", ""), "Share snapshots are not emulated.")
        range_value = req.header("x-ms-range") or req.header("Range")
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=False)
            size = os.path.getsize(found.path)
        ranges = [list(r) for r in props.get("ranges", [])]
        if range_value is not None:
            start, end = parse_range("x-ms-range", range_value, require_end=True)
            ranges = [[max(a, start), min(b, end)] for a, b in ranges if b >= start and a <= end]
        next_marker = None
        if "marker" in req.query or "maxresults" in req.query:
            # The paged form (newer SDKs' list_ranges): the marker is the start offset of the next range.
            marker = req.query.get("marker")
            if marker:
                after = decode_marker(marker)
                if not after.isdigit():
                    raise query_error("marker", marker)
                ranges = [r for r in ranges if r[0] >= int(after)]
            limit = self._max_results(req) or MAX_LIST_RESULTS
            ranges, rest = ranges[:limit], ranges[limit:]
            next_marker = encode_marker(str(rest[0][0])) if rest else ""
        headers = [*self._etag_headers(props), ("x-ms-content-length", str(size)), ("Content-Type", "application/xml")]
        return Response(200, headers, xmlbody.range_list(ranges, next_marker=next_marker))

    def set_file_properties(self, req: Request, auth: Auth) -> Response:
        size = _int_header(req, "x-ms-content-length", low=0, high=MAX_FILE_BYTES)
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=True)
            ticks = self.store.tick()
            self._content_settings(req, props, creating=False)
            self._apply_smb(req, req.share, props, ticks, creating=False)
            if size is not None:
                os.truncate(found.path, size)
                props["ranges"] = clip_ranges(props.get("ranges", []), size)
            props["copy"] = None
            self._stamp(props, ticks)
            self.store.put_node(req.share, found.names, props)
            headers = [
                *self._etag_headers(props),
                ("x-ms-request-server-encrypted", "true"),
                *self._smb_headers(req, req.share, found.names, props),
            ]
        return Response(200, headers)

    def set_file_metadata(self, req: Request, auth: Auth) -> Response:
        metadata = self._metadata(req)
        with self.store.lock:
            found, props = self._existing(req, "file")
            self._check_lease(req, props, write=True)
            props["metadata"] = metadata
            ticks = self.store.tick()
            props["change_time"] = ticks
            self._stamp(props, ticks)
            self.store.put_node(req.share, found.names, props)
        return Response(200, [*self._etag_headers(props), ("x-ms-request-server-encrypted", "true")])

    def get_file_metadata(self, req: Request, auth: Auth) -> Response:
        with self.store.lock:
            _found, props = self._existing(req, "file")
        return Response(200, [*self._meta_headers(props), *self._etag_headers(props)])

    def lease_file(self, req: Request, auth: Auth) -> Response:
        action = (req.header("x-ms-lease-action") or "").lower()
        if not action:
            raise header_error("MissingRequiredHeader", "x-ms-lease-action")
        with self.store.lock:
            found, props = self._existing(req, "file")
            current = props.get("lease")
            given = req.header("x-ms-lease-id")
            if action == "acquire":
                duration = req.header("x-ms-lease-duration") or "-1"
                if duration != "-1":
                    raise header_error("InvalidHeaderValue", "x-ms-lease-duration", duration)
                proposed = req.header("x-ms-proposed-lease-id") or str(uuid.uuid4())
                if current and current.lower() != proposed.lower():
                    raise StorageError("LeaseAlreadyPresent")
                props["lease"], status, lease_id = proposed, 201, proposed
            elif action in ("release", "change"):
                if given is None:
                    raise header_error("MissingRequiredHeader", "x-ms-lease-id")
                if not current:
                    raise StorageError("LeaseNotPresentWithLeaseOperation")
                if current.lower() != given.lower():
                    raise StorageError("LeaseIdMismatchWithLeaseOperation")
                if action == "release":
                    props["lease"], status, lease_id = None, 200, None
                else:
                    proposed = req.header("x-ms-proposed-lease-id")
                    if proposed is None:
                        raise header_error("MissingRequiredHeader", "x-ms-proposed-lease-id")
                    props["lease"], status, lease_id = proposed, 200, proposed
            elif action == "break":
                if not current:
                    raise StorageError("LeaseNotPresentWithLeaseOperation")
                # Files have infinite leases only, and breaking one ends it at once.
                props["lease"], status, lease_id = None, 202, None
            else:
                raise header_error("InvalidHeaderValue", "x-ms-lease-action", action)
            self._stamp(props, self.store.tick())
            self.store.put_node(req.share, found.names, props)
        headers = self._etag_headers(props)
        if lease_id:
            headers.append(("x-ms-lease-id", lease_id))
        if action == "break":
            headers.append(("x-ms-lease-time", "0"))
        return Response(status, headers)

    def rename(self, req: Request, auth: Auth) -> Response:
        kind = "dir" if req.query.get("restype") == "directory" else "file"
        source_url = req.header("x-ms-file-rename-source")
        if source_url is None:
            raise header_error("MissingRequiredHeader", "x-ms-file-rename-source")
        replace = _bool_header(req, "x-ms-file-rename-replace-if-exists") or False
        source_path = unquote(urlsplit(source_url).path).split("/")
        # The source may be given path-style (/account/share/...) or relative to the share.
        if len(source_path) > 2 and source_path[1] == self.account and source_path[2] == req.share:
            source_segments = [s for s in source_path[3:] if s]
        elif len(source_path) > 1 and source_path[1] == req.share:
            source_segments = [s for s in source_path[2:] if s]
        else:
            raise header_error("InvalidHeaderValue", "x-ms-file-rename-source", source_url)
        for segment in source_segments:
            check_path_segment(segment)
        with self.store.lock:
            source = self.store.resolve(req.share, source_segments)
            if source.kind != kind or not source.names:
                raise StorageError("ResourceNotFound")
            source_props = self.store.get_node(req.share, source.names, kind)
            if kind == "file":
                lease = source_props.get("lease")
                if lease and (req.header("x-ms-source-lease-id") or "").lower() != lease.lower():
                    raise StorageError("LeaseIdMissing")
            target = self.store.resolve(req.share, req.names)
            if not target.parent_exists:
                raise StorageError("ParentNotFound")
            target_names = target.names if target.kind else [*target.names, req.names[-1]]
            if [n.lower() for n in target_names[: len(source.names)]] == [n.lower() for n in source.names] and (
                len(target_names) > len(source.names)
            ):
                raise StorageError("InvalidInput", "The destination is inside the source directory.")
            same_item = [n.lower() for n in target_names] == [n.lower() for n in source.names]
            if same_item:
                # A rename that only changes the case of the name.
                target_names = [*target_names[:-1], req.names[-1]]
            if target.kind is not None and not same_item:
                if not replace or target.kind != kind or kind == "dir":
                    raise StorageError("ResourceAlreadyExists")
                target_props = self.store.get_node(req.share, target.names, target.kind)
                self._check_lease(_with_lease(req, req.header("x-ms-destination-lease-id")), target_props, write=True)
            source_path_on_disk = source.path
            target_path = self.store.share_dir(req.share).joinpath(*target_names)
            if target.kind == "file" and not same_item:
                target_path.unlink()
                self.store.delete_node(req.share, target_names)
            if kind == "dir":
                shutil.move(str(source_path_on_disk), str(target_path))
            else:
                os.replace(source_path_on_disk, target_path)
            self.store.forget_listing(source_path_on_disk.parent)
            self.store.forget_listing(target_path.parent)
            self.store.move_subtree(req.share, source.names, target_names)
            ticks = self.store.tick()
            self._apply_smb(req, req.share, source_props, ticks, creating=False)
            self._stamp(source_props, ticks)
            self.store.put_node(req.share, target_names, source_props)
            headers = [
                *self._etag_headers(source_props),
                ("x-ms-request-server-encrypted", "true"),
                *self._smb_headers(req, req.share, target_names, source_props),
            ]
        return Response(200, headers)


def _with_headers(req: Request, dropped: set[str]) -> Request:
    headers = [(k, v) for k, v in req.headers if k.lower() not in dropped]
    return Request(req.method, req.raw_path, req.raw_query, headers, version=req.version)


def _with_lease(req: Request, lease_id: str | None) -> Request:
    headers = [(k, v) for k, v in req.headers if k.lower() != "x-ms-lease-id"]
    if lease_id is not None:
        headers.append(("x-ms-lease-id", lease_id))
    return Request(req.method, req.raw_path, req.raw_query, headers, version=req.version)


def _split_query_first(raw_query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in split_query(raw_query):
        out.setdefault(name.lower(), value)
    return out
