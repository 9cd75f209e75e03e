"""Durations as Batch AI wrote them (maxWallClockTime: "7.00:00:00" or ISO 8601 "P7D").

A leaf module: the runner, the models and config all read durations, and the runner must not
import config (its package imports every file checker) to read one.
"""

from __future__ import annotations

import re
from datetime import timedelta

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_ISO = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> timedelta | None:
    """maxWallClockTime as .NET writes it ("7.00:00:00") or ISO 8601 ("P7D"); None if neither."""
    try:
        return _parse_duration(text)
    except OverflowError:  # more days than a timedelta holds (999999999)
        return None


def has_duration_form(text: str) -> bool:
    """True when `text` has one of the two forms, whether or not its values are in range."""
    return bool(_TIMESPAN.match(text) or _ISO.match(text))


def _parse_duration(text: str) -> timedelta | None:
    match = _TIMESPAN.match(text)
    if match:
        days, hours, minutes, seconds, fraction = match.groups()
        if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
            return None
        return timedelta(
            days=int(days or 0),
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds) + float(f"0.{fraction or 0}"),
        )
    match = _ISO.match(text)
    if match and text != "P" and not text.endswith("T"):
        years, months, weeks, days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
        return timedelta(
            days=years * 365 + months * 30 + weeks * 7 + days, hours=hours, minutes=minutes, seconds=seconds
        )
    return None
