"""Time formats, ETags, ranges and name rules shared by the emulator modules."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import time

from .errors import StorageError, header_error

# Times are kept as 100 ns ticks since the Unix epoch: the service reports 7 fractional digits.
TICKS_PER_SECOND = 10_000_000
# ETags are .NET DateTime ticks (100 ns since 0001-01-01), which is what the real "0x8D..." values are.
DOTNET_EPOCH_TICKS = 621_355_968_000_000_000

_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(Z|[+-]00:?00)?$")
_DATE_ONLY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def now_ticks() -> int:
    return time.time_ns() // 100


def ticks_to_iso(ticks: int) -> str:
    seconds, frac = divmod(ticks, TICKS_PER_SECOND)
    base = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:07d}Z"


def iso_to_ticks(text: str) -> int:
    """Parse the ISO 8601 forms the SDKs send (7 fractional digits, 'Z'); raise ValueError otherwise."""
    m = _ISO_RE.match(text.strip())
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        frac = (m.group(7) or "").ljust(7, "0")
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
        return int(moment.timestamp()) * TICKS_PER_SECOND + int(frac)
    m = _DATE_ONLY_RE.match(text.strip())
    if m:
        moment = dt.datetime(*(int(g) for g in m.groups()), tzinfo=dt.timezone.utc)
        return int(moment.timestamp()) * TICKS_PER_SECOND
    raise ValueError(f"not an ISO 8601 time: {text!r}")


def ticks_to_rfc1123(ticks: int) -> str:
    return email.utils.formatdate(ticks / TICKS_PER_SECOND, usegmt=True)


def rfc1123_to_ticks(text: str) -> int:
    parsed = email.utils.parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp()) * TICKS_PER_SECOND


def etag_for(ticks: int) -> str:
    return f'"0x{ticks + DOTNET_EPOCH_TICKS:X}"'


def version_at_least(version: str, minimum: str) -> bool:
    # x-ms-version values are ISO dates, so string order is date order.
    return version >= minimum


_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def parse_range(header: str, value: str, *, require_end: bool) -> tuple[int, int | None]:
    m = _RANGE_RE.match(value.strip())
    if not m or (require_end and not m.group(2)):
        raise header_error("InvalidHeaderValue", header, value)
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else None
    if end is not None and end < start:
        raise header_error("InvalidHeaderValue", header, value)
    return start, end


# Share names: 3-63 chars, lowercase letters, digits and single hyphens, not starting or ending with one.
_SHARE_NAME_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_INVALID_NAME_CHARS = set('"\\/:|<>*?') | {chr(c) for c in range(0x20)}


def is_valid_share_name(name: str) -> bool:
    return bool(_SHARE_NAME_RE.match(name))


def check_path_segment(segment: str) -> None:
    """Reject names the service rejects; this is also what keeps paths inside the share folder."""
    if (
        not segment
        or segment in (".", "..")
        or len(segment) > 255
        or any(ch in _INVALID_NAME_CHARS for ch in segment)
        or "\ufffd" in segment  # the URL held bytes that are not UTF-8
    ):
        raise StorageError("InvalidResourceName")


# Ranges written by Put Range are kept as sorted, merged, inclusive [start, end] pairs.
def add_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted([*ranges, [start, end]]):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def remove_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in ranges:
        if b < start or a > end:
            out.append([a, b])
            continue
        if a < start:
            out.append([a, start - 1])
        if b > end:
            out.append([end + 1, b])
    return out


def clip_ranges(ranges: list[list[int]], size: int) -> list[list[int]]:
    return remove_range(ranges, size, max(size, max((b for _, b in ranges), default=0)))
