"""XML response bodies, element for element in the order the real service writes them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from .util import ticks_to_iso, ticks_to_rfc1123

XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'
# Characters XML 1.0 cannot carry; names holding them are sent percent-encoded with Encoded="true".
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\ufffe\uffff]")


def document(body: str) -> bytes:
    # Every XML body of the service starts with a UTF-8 byte order mark.
    return "\ufeff".encode() + (XML_DECL + body).encode("utf-8")


def el(name: str, value: object | None) -> str:
    if value is None or value == "":
        return f"<{name} />"
    return f"<{name}>{escape(str(value))}</{name}>"


def name_el(tag: str, value: str) -> str:
    if _NOT_XML.search(value):
        return f'<{tag} Encoded="true">{quote(value, safe="")}</{tag}>'
    return el(tag, value)


def share_list(
    service_endpoint: str,
    *,
    prefix: str | None,
    marker: str | None,
    max_results: int | None,
    shares: list[tuple[str, dict]],
    next_marker: str,
    include_metadata: bool,
    version: str,
) -> bytes:
    parts = [f"<EnumerationResults ServiceEndpoint={quoteattr(service_endpoint)}>"]
    if prefix is not None:
        parts.append(el("Prefix", prefix))
    if marker is not None:
        parts.append(el("Marker", marker))
    if max_results is not None:
        parts.append(el("MaxResults", max_results))
    parts.append("<Shares>" if shares else "<Shares />")
    for name, props in shares:
        parts.append(f"<Share>{el('Name', name)}<Properties>")
        parts.append(el("Last-Modified", ticks_to_rfc1123(props["last_modified"])))
        parts.append(el("Etag", props["etag"]))
        parts.append(el("Quota", props["quota"]))
        if version >= "2019-12-12":
            parts.append(el("AccessTier", props["access_tier"]))
            parts.append(el("AccessTierChangeTime", ticks_to_rfc1123(props["access_tier_change_time"])))
            parts.append(el("LeaseStatus", "unlocked") + el("LeaseState", "available"))
        parts.append("</Properties>")
        if include_metadata:
            meta = "".join(el(k, v) for k, v in props["metadata"])
            parts.append(f"<Metadata>{meta}</Metadata>" if meta else "<Metadata />")
        parts.append("</Share>")
    if shares:
        parts.append("</Shares>")
    parts.append(el("NextMarker", next_marker) + "</EnumerationResults>")
    return document("".join(parts))


def directory_list(
    service_endpoint: str,
    *,
    share: str,
    directory_path: str,
    prefix: str | None,
    marker: str | None,
    max_results: int | None,
    directory_id: str | None,
    entries: list[tuple[str, str, int, dict]],
    include: set[str],
    next_marker: str,
) -> bytes:
    """entries: (name, kind, size, props). directory_id None leaves out DirectoryId and FileId."""
    parts = [
        f"<EnumerationResults ServiceEndpoint={quoteattr(service_endpoint)} ShareName={quoteattr(share)}"
        f" DirectoryPath={quoteattr(directory_path)}>"
    ]
    if marker is not None:
        parts.append(el("Marker", marker))
    if prefix is not None:
        parts.append(name_el("Prefix", prefix))
    if max_results is not None:
        parts.append(el("MaxResults", max_results))
    if directory_id is not None:
        parts.append(el("DirectoryId", directory_id))
    parts.append("<Entries>" if entries else "<Entries />")
    for name, kind, size, props in entries:
        tag = "File" if kind == "file" else "Directory"
        parts.append(f"<{tag}>{name_el('Name', name)}")
        if directory_id is not None:
            parts.append(el("FileId", props["file_id"]))
        inner = []
        if kind == "file":
            inner.append(el("Content-Length", size))
        if "timestamps" in include:
            for element, key in (
                ("CreationTime", "creation_time"),
                ("LastAccessTime", "last_write_time"),
                ("LastWriteTime", "last_write_time"),
                ("ChangeTime", "change_time"),
            ):
                inner.append(el(element, ticks_to_iso(props[key])))
            inner.append(el("Last-Modified", ticks_to_rfc1123(props["last_modified"])))
        if "etag" in include:
            inner.append(el("Etag", props["etag"]))
        parts.append(f"<Properties>{''.join(inner)}</Properties>" if inner else "<Properties />")
        if "attributes" in include:
            parts.append(el("Attributes", props["attributes"]))
        if "permissionkey" in include:
            parts.append(el("PermissionKey", props["permission_key"]))
        parts.append(f"</{tag}>")
    if entries:
        parts.append("</Entries>")
    parts.append(el("NextMarker", next_marker) + "</EnumerationResults>")
    return document("".join(parts))


def range_list(ranges: list[list[int]], *, next_marker: str | None = None) -> bytes:
    body = "".join(f"<Range><Start>{a}</Start><End>{b}</End></Range>" for a, b in ranges)
    if next_marker is not None:
        body += el("NextMarker", next_marker)
    return document(f"<Ranges>{body}</Ranges>" if body else "<Ranges />")


def handle_list() -> bytes:
    return document("<EnumerationResults><Entries /><NextMarker /></EnumerationResults>")


def share_stats(usage_bytes: int) -> bytes:
    return document(f"<ShareStats><ShareUsageBytes>{usage_bytes}</ShareUsageBytes></ShareStats>")


DEFAULT_SERVICE_PROPERTIES = (
    "<StorageServiceProperties>"
    "<HourMetrics><Version>1.0</Version><Enabled>false</Enabled>"
    "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>"
    "<MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>"
    "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>"
    "<Cors />"
    "</StorageServiceProperties>"
)


def render_element(element: ET.Element) -> str:
    """Re-serialize a client's XML the way the service echoes it: compact, lowercase booleans."""
    text = (element.text or "").strip()
    if text in ("True", "False"):
        text = text.lower()
    children = "".join(render_element(child) for child in element)
    if not text and not children:
        return f"<{element.tag} />"
    return f"<{element.tag}>{escape(text)}{children}</{element.tag}>"


def signed_identifiers(acl: list[dict]) -> bytes:
    items = []
    for entry in acl:
        policy = "".join(el(k, entry[k]) for k in ("Start", "Expiry", "Permission") if entry.get(k))
        items.append(
            f"<SignedIdentifier>{el('Id', entry['Id'])}<AccessPolicy>{policy}</AccessPolicy></SignedIdentifier>"
        )
    return document(f"<SignedIdentifiers>{''.join(items)}</SignedIdentifiers>")
