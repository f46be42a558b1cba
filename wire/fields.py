"""Field types the signed wire messages share, checked as everywhere else in `wire`.

`HubId` is a hub id as `wire.topics.validate_hub_id` accepts it; `Uuid7` a UUID that is a
UUIDv7 (`wire.ids.uuid7_time_ms`). A bad value is a pydantic validation error whose message is
the `WireError`'s.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator

from wire.errors import WireError
from wire.ids import uuid7_time_ms
from wire.topics import validate_hub_id


def _hub_id(value: str) -> str:
    try:
        return validate_hub_id(value)
    except WireError as exc:
        raise ValueError(str(exc)) from None


def _uuid7(value: UUID) -> UUID:
    try:
        uuid7_time_ms(value)
    except WireError as exc:
        raise ValueError(str(exc)) from None
    return value


HubId = Annotated[str, AfterValidator(_hub_id)]
Uuid7 = Annotated[UUID, AfterValidator(_uuid7)]
