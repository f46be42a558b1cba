"""Pure Record Access Control Point logic: which stored records a request selects, and the reply."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hub.ble.virtual.encode import (
    RACP_ABORT,
    RACP_DELETE_RECORDS,
    RACP_REPORT_NUMBER,
    RACP_REPORT_RECORDS,
    RacpResponse,
    racp_number_of_records,
    racp_response,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

# vectors.md section 6, RACP table: operators and the sequence-number filter type.
OPERATOR_NULL = 0x00
OPERATOR_ALL = 0x01
OPERATOR_LESS_OR_EQUAL = 0x02
OPERATOR_GREATER_OR_EQUAL = 0x03
OPERATOR_RANGE = 0x04
OPERATOR_FIRST = 0x05
OPERATOR_LAST = 0x06
FILTER_SEQUENCE_NUMBER = 0x01
FILTER_USER_FACING_TIME = 0x02
_SINGLE_OPERAND = 3  # filter type + u16
_RANGE_OPERAND = 5  # filter type + u16 + u16


@dataclasses.dataclass(frozen=True)
class RacpOutcome:
    """What the server does: stream ``selected`` records (report), delete them, or only reply."""

    op_code: int
    selected: tuple[int, ...] = ()
    reply: bytes | None = None

    @property
    def streams_records(self) -> bool:
        """Whether records are sent before the final ``06 00 01 01``."""
        return self.op_code == RACP_REPORT_RECORDS and self.reply is None


def evaluate_racp(  # noqa: C901, PLR0911 - one exit per RACP response code, in spec order
    request: bytes, sequence_numbers: Sequence[int]
) -> RacpOutcome:
    """Decide the outcome of one RACP write against records with ``sequence_numbers``."""
    if not request:
        return _fail(0, RacpResponse.OP_CODE_NOT_SUPPORTED)
    op_code = request[0]
    if op_code not in (RACP_REPORT_RECORDS, RACP_DELETE_RECORDS, RACP_ABORT, RACP_REPORT_NUMBER):
        return _fail(op_code, RacpResponse.OP_CODE_NOT_SUPPORTED)
    if len(request) < 2:  # noqa: PLR2004 - op code + operator
        return _fail(op_code, RacpResponse.INVALID_OPERATOR)
    operator, operand = request[1], request[2:]
    if op_code == RACP_ABORT:
        if operator != OPERATOR_NULL:
            return _fail(op_code, RacpResponse.INVALID_OPERATOR)
        if operand:
            return _fail(op_code, RacpResponse.INVALID_OPERAND)
        return RacpOutcome(op_code, reply=racp_response(op_code, RacpResponse.SUCCESS))
    selected = _select(operator, operand, sorted(sequence_numbers))
    if isinstance(selected, RacpResponse):
        return _fail(op_code, selected)
    if op_code == RACP_REPORT_NUMBER:
        return RacpOutcome(op_code, selected, racp_number_of_records(len(selected)))
    if not selected:
        return _fail(op_code, RacpResponse.NO_RECORDS_FOUND)
    if op_code == RACP_DELETE_RECORDS:
        return RacpOutcome(op_code, selected, racp_response(op_code, RacpResponse.SUCCESS))
    return RacpOutcome(op_code, selected)


def _select(  # noqa: C901, PLR0911, PLR0912 - a decision table over the RACP operators
    operator: int, operand: bytes, ordered: list[int]
) -> tuple[int, ...] | RacpResponse:
    if operator == OPERATOR_NULL:
        return RacpResponse.INVALID_OPERATOR
    if operator > OPERATOR_LAST:
        return RacpResponse.OPERATOR_NOT_SUPPORTED
    if operator in (OPERATOR_ALL, OPERATOR_FIRST, OPERATOR_LAST):
        if operand:
            return RacpResponse.INVALID_OPERAND
        if operator == OPERATOR_ALL:
            return tuple(ordered)
        if not ordered:
            return ()
        return (ordered[0],) if operator == OPERATOR_FIRST else (ordered[-1],)
    if not operand:
        return RacpResponse.INVALID_OPERAND
    if operand[0] == FILTER_USER_FACING_TIME:
        return RacpResponse.OPERAND_NOT_SUPPORTED
    if operand[0] != FILTER_SEQUENCE_NUMBER:
        return RacpResponse.INVALID_OPERAND
    expected = _RANGE_OPERAND if operator == OPERATOR_RANGE else _SINGLE_OPERAND
    if len(operand) != expected:
        return RacpResponse.INVALID_OPERAND
    first = int.from_bytes(operand[1:3], "little")
    if operator == OPERATOR_LESS_OR_EQUAL:
        return tuple(s for s in ordered if s <= first)
    if operator == OPERATOR_GREATER_OR_EQUAL:
        return tuple(s for s in ordered if s >= first)
    last = int.from_bytes(operand[3:5], "little")
    if first > last:
        return RacpResponse.INVALID_OPERAND
    return tuple(s for s in ordered if first <= s <= last)


def _fail(op_code: int, code: RacpResponse) -> RacpOutcome:
    return RacpOutcome(op_code, reply=racp_response(op_code, code))
