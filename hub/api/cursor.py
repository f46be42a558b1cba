"""The `next` cursor of `GET /api/v1/readings`, pure: encode a boundary, decode untrusted input.

Readings come oldest received first, and several can share one `received_at` (a device's stored
records downloaded at once). A cursor is therefore (the last `received_at` returned, how many
readings at exactly that time were returned so far): the next page asks from that time on
(inclusive) and skips that many. Opaque to phones: base64url of compact JSON.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_CURSOR = 200  # characters; a real cursor is about 70
MAX_SKIP = 100_000  # readings sharing one received_at; far above any real download


class BadCursor(ValueError):
    """The cursor was not made by this hub (or was altered): answer 422."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts."""

    since: datetime
    skip: int

    def encode(self) -> str:
        """The opaque text a phone sends back."""
        raw = json.dumps({"t": self.since.isoformat(), "n": self.skip}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor in `text`; `BadCursor` for anything this hub did not make."""
    if not 0 < len(text) <= MAX_CURSOR:
        raise BadCursor(f"a cursor is 1 to {MAX_CURSOR} characters")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        since = datetime.fromisoformat(data["t"])
        skip = data["n"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadCursor("not a cursor from this hub: pass the `next` value unchanged") from None
    if since.tzinfo is None or type(skip) is not int or not 0 < skip <= MAX_SKIP:
        raise BadCursor("not a cursor from this hub: pass the `next` value unchanged")
    try:
        return Cursor(since.astimezone(UTC), skip)
    except OverflowError:
        raise BadCursor("not a cursor from this hub: pass the `next` value unchanged") from None


def next_cursor(received: list[datetime], *, previous: Cursor | None, more: bool) -> Cursor | None:
    """The cursor after a page whose readings were received at `received` (in order).

    `previous` is the cursor the page was asked with; `more` says whether readings follow.
    """
    if not more or not received:
        return None
    last = received[-1]
    same = sum(1 for t in received if t == last)
    if previous is not None and previous.since == last and same == len(received):
        same += previous.skip  # the whole page shared the previous boundary's time
    return Cursor(last, same)
