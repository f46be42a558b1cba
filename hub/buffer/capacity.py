"""Pure capacity arithmetic: the recent insert rate and the hours of room it leaves."""

from __future__ import annotations

from collections import deque

WINDOW_S = 3600.0
"""The insert rate is measured over the last hour, in one-minute buckets."""
_BUCKET_S = 60.0


class InsertRate:
    """Bytes stored per hour over a sliding window; the caller supplies monotonic `now` seconds."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._buckets: deque[tuple[float, int, int]] = deque()  # (bucket start, bytes, rows)
        self._started: float | None = None

    def add(self, now: float, nbytes: int, rows: int) -> None:
        """Record `rows` readings of `nbytes` in total stored at `now`."""
        if self._started is None:
            self._started = now
        start = now - now % _BUCKET_S
        if self._buckets and self._buckets[-1][0] == start:
            _, b, r = self._buckets[-1]
            self._buckets[-1] = (start, b + nbytes, r + rows)
        else:
            self._buckets.append((start, nbytes, rows))
        self._expire(now)

    def bytes_per_hour(self, now: float) -> float:
        """Recent stored bytes per hour; 0.0 before anything was stored."""
        self._expire(now)
        if self._started is None or not self._buckets:
            return 0.0
        # Over a window shorter than an hour when the process started recently, but never less
        # than one bucket, so one early burst does not read as an absurd rate.
        span = max(min(now - self._started, self._window_s), _BUCKET_S)
        return sum(b for _, b, _ in self._buckets) * 3600.0 / span

    def bytes_per_reading(self, now: float) -> float | None:
        """Mean stored bytes of one recent reading, or None before any."""
        self._expire(now)
        rows = sum(r for _, _, r in self._buckets)
        return sum(b for _, b, _ in self._buckets) / rows if rows else None

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] + _BUCKET_S <= now - self._window_s:
            self._buckets.popleft()


def hours_left(free_bytes: int, bytes_per_hour: float) -> float | None:
    """Hours until `free_bytes` fill at `bytes_per_hour` if nothing is delivered; None if never."""
    if free_bytes <= 0:
        return 0.0
    if bytes_per_hour <= 0:
        return None
    return free_bytes / bytes_per_hour
