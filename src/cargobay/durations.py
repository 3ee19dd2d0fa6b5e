"""Durations written the way registry:2's config writes them (Go's `168h`, `1h30m`, `500ms`)."""

import datetime
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> datetime.timedelta:
    """Parse `text`; `0` alone needs no unit. Raises ValueError naming the accepted form."""
    text = text.strip()
    if text == "0":
        return datetime.timedelta(0)
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 30s, 15m, 1h30m")
    return datetime.timedelta(seconds=seconds)
