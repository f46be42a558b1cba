"""A virtual glucose meter (Glucose Service 0x1808) with stored records behind RACP 0x2A52."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from bumble import att

from hub.ble.virtual import encode
from hub.ble.virtual.peripheral import P, VirtualPeripheral
from hub.ble.virtual.racp import RacpOutcome, evaluate_racp

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from bumble import gatt
    from bumble.device import Connection

GLUCOSE_SERVICE = 0x1808
GLUCOSE_MEASUREMENT = 0x2A18
GLUCOSE_CONTEXT = 0x2A34
GLUCOSE_FEATURE = 0x2A51
RACP = 0x2A52
# Core Supplement Part B 1.2 common profile errors (vectors.md section 6).
CCCD_IMPROPERLY_CONFIGURED = 0xFD
PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
_CCCD_INDICATE = 0x02


@dataclasses.dataclass(frozen=True)
class GlucoseRecord:
    """One stored glucose record; ``concentration`` in kg/L (0.001 = 100 mg/dL) unless mol/L."""

    sequence: int
    base_time: dt.datetime
    concentration: float | None = 0.001
    unit: int = encode.GLUCOSE_UNIT_KG_PER_L
    sample_type: int = 1  # capillary whole blood
    sample_location: int = 1  # finger
    time_offset: int | None = None
    sensor_status: int | None = None
    meal: int | None = None  # a Glucose Measurement Context 0x2A34 follows when set

    def measurement(self) -> bytes:
        """Return the 0x2A18 value."""
        return encode.glucose_measurement(
            self.sequence,
            self.base_time,
            time_offset=self.time_offset,
            concentration=self.concentration,
            unit=self.unit,
            sample_type=self.sample_type,
            sample_location=self.sample_location,
            sensor_status=self.sensor_status,
            context_follows=self.meal is not None,
        )

    def context(self) -> bytes | None:
        """Return the 0x2A34 value, if the record has one."""
        if self.meal is None:
            return None
        return encode.glucose_context(self.sequence, meal=self.meal)


class GlucoseMeter(VirtualPeripheral):
    """Answers RACP report-all / report >= / number-of-records / delete / abort over the air.

    ``pause_after`` makes a report stop after that many records until ``resume()`` or an abort,
    so tests can act mid-download (vanish, abort) without racing the meter.
    """

    service_uuid = GLUCOSE_SERVICE

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA GLUCO",
        records: Iterable[GlucoseRecord] = (),
        features: int = 0x0000,
        requires_bonding: bool = True,
        pause_after: int | None = None,
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(address=address, name=name, requires_bonding=requires_bonding, **kwargs)
        self.records: dict[int, GlucoseRecord] = {r.sequence: r for r in records}
        self.features = features
        self.pause_after = pause_after
        self.sent_in_procedure = 0
        self.requests: list[bytes] = []
        self._procedure: asyncio.Task[None] | None = None
        self._resume = asyncio.Event()
        self._abort = False

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A18 notify, 0x2A34 notify, 0x2A51 read, 0x2A52 write + indicate."""
        return [
            self.characteristic(GLUCOSE_MEASUREMENT, P.NOTIFY),
            self.characteristic(GLUCOSE_CONTEXT, P.NOTIFY),
            self.characteristic(GLUCOSE_FEATURE, P.READ, value=self.features.to_bytes(2, "little")),
            self.characteristic(RACP, P.WRITE | P.INDICATE, write=self._on_racp_write),
        ]

    def add_record(self, record: GlucoseRecord) -> None:
        """Store a record (the meter measured again)."""
        self.records[record.sequence] = record

    def resume(self) -> None:
        """Let a paused report continue."""
        self._resume.set()

    @property
    def paused(self) -> bool:
        """Whether a report waits at ``pause_after``."""
        return (
            self._procedure is not None
            and self.pause_after is not None
            and self.sent_in_procedure >= self.pause_after
            and not self._resume.is_set()
        )

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        if not self._cccd(connection, RACP) & _CCCD_INDICATE:
            raise att.ATT_Error(error_code=CCCD_IMPROPERLY_CONFIGURED)
        self.requests.append(bytes(value))
        outcome = evaluate_racp(bytes(value), list(self.records))
        busy = self._procedure is not None and not self._procedure.done()
        if outcome.op_code == encode.RACP_ABORT:
            self._abort = True
            self._resume.set()
        elif busy:
            raise att.ATT_Error(error_code=PROCEDURE_ALREADY_IN_PROGRESS)
        procedure = asyncio.get_running_loop().create_task(self._run(connection, outcome))
        if outcome.op_code != encode.RACP_ABORT:
            self._procedure = procedure
        self.spawn(connection, _wait(procedure))

    async def _run(self, connection: Connection, outcome: RacpOutcome) -> None:
        if outcome.streams_records:
            self._abort = False
            self._resume.clear()
            self.sent_in_procedure = 0
            for sequence in outcome.selected:
                if self.pause_after is not None and self.sent_in_procedure == self.pause_after:
                    self.notify_change()
                    await self._resume.wait()
                if self._abort:
                    return  # the abort's own response ends the exchange
                record = self.records[sequence]
                await self.send(GLUCOSE_MEASUREMENT, record.measurement(), connection)
                if (context := record.context()) is not None:
                    await self.send(GLUCOSE_CONTEXT, context, connection)
                self.sent_in_procedure += 1
                self.notify_change()
            await self.send(
                RACP, encode.racp_response(outcome.op_code, encode.RacpResponse.SUCCESS), connection
            )
            return
        if outcome.op_code == encode.RACP_DELETE_RECORDS and outcome.reply is not None:
            for sequence in outcome.selected:
                self.records.pop(sequence, None)
        if outcome.reply is not None:
            await self.send(RACP, outcome.reply, connection)


async def _wait(task: asyncio.Task[None]) -> None:
    """Tie a procedure to its link: cancelling this (link lost) cancels the procedure."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        raise
