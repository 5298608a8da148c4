"""Durations as people write them (`20m`, `1h30m`, `90s`), as Lightning's time guard takes them
(`DD:HH:MM:SS`), and as a clock shows them (`H:MM:SS`). Standard library only: Ray Train's controller
imports this through the callbacks it runs."""

from __future__ import annotations

import re

DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(text: str) -> int:
    """`20m`, `1h30m`, `90s`, `2h` -> seconds; a `ValueError` says what a duration looks like."""
    match = DURATION.match(text.strip().replace(" ", "")) if text else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: write hours, minutes and seconds like 20m, 1h30m or 90s")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = (hours * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r}: a budget must be longer than zero")
    return total


def guard_seconds(max_time: str | None) -> float | None:
    """`DD:HH:MM:SS` -> seconds."""
    if not max_time:
        return None
    days, hours, minutes, seconds = (int(x) for x in max_time.split(":"))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def clock(seconds: float) -> str:
    """Seconds -> `H:MM:SS`."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
