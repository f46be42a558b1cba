"""Plans: what health agents are asked to do (campaigns, visits), pushed by the cloud to hubs.

The cloud sends a hub the full set of its plans as one snapshot (`PlanSnapshot`, the `data` of
a `plans` command on `down/cmd`, see `wire.commands`); a hub keeps the newest snapshot and
serves it to phones (`GET /api/v1/plans/`). The same snapshot, as a JSON file, can be loaded
on a hub with `tecsa-hub plans import FILE` while it is offline.

Every model is frozen and forbids unknown fields, like the item schemas (`wire.items`).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic resolves the annotation at runtime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from wire.items import Ident

MAX_PLANS = 10_000
"""Plans in one snapshot; a snapshot also fits the 1 MiB cap of a command."""
MAX_PLAN_AGENTS = 1_000

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S")
]


class PlanKind(StrEnum):
    """What a plan asks of agents."""

    CAMPAIGN = "campaign"
    """A time-boxed campaign over an area (vaccination, screening, distribution)."""
    VISIT = "visit"
    """A planned household or patient visit."""


class Plan(BaseModel):
    """One plan as the cloud defines it; `payload` is free-form JSON for the phone app."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    id: Ident
    """Stable id chosen by the cloud; a new snapshot with the same id replaces the plan."""
    title: Title
    kind: PlanKind
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    """None: open-ended."""
    agent_ids: tuple[Ident, ...] = Field(default=(), max_length=MAX_PLAN_AGENTS)
    """Agents the plan is for; empty means every agent of the hub."""
    payload: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _window(self) -> Plan:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    def active_at(self, when: datetime) -> bool:
        """True when `when` (aware) falls within the plan's window."""
        return self.starts_at <= when and (self.ends_at is None or when <= self.ends_at)

    def for_agent(self, agent_id: str) -> bool:
        """True when the plan is for `agent_id` (every agent when `agent_ids` is empty)."""
        return not self.agent_ids or agent_id in self.agent_ids


class PlanSnapshot(BaseModel):
    """The complete set of a hub's plans at `version`; newer versions replace older ones whole."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    version: int = Field(ge=0, lt=2**63, strict=True)
    plans: tuple[Plan, ...] = Field(default=(), max_length=MAX_PLANS)

    @model_validator(mode="after")
    def _unique(self) -> PlanSnapshot:
        seen: set[str] = set()
        for plan in self.plans:
            if plan.id in seen:
                raise ValueError(f"plan id {plan.id} appears twice")
            seen.add(plan.id)
        return self
