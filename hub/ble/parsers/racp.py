"""Record Access Control Point 0x2A52: parse the responses, build the requests a hub writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hub.ble.parsers._codec import check_input
from hub.ble.parsers.errors import ParseError

RACP = "2a52"

# GSS "Record Access Control Point" op codes.
REPORT_STORED_RECORDS = 0x01
DELETE_STORED_RECORDS = 0x02
ABORT_OPERATION = 0x03
REPORT_NUMBER_OF_RECORDS = 0x04
NUMBER_OF_RECORDS_RESPONSE = 0x05
RESPONSE_CODE = 0x06
# Operators.
OPERATOR_NULL = 0x00
OPERATOR_ALL = 0x01
OPERATOR_GREATER_OR_EQUAL = 0x03
FILTER_SEQUENCE_NUMBER = 0x01
REQUEST_OPCODES = {
    REPORT_STORED_RECORDS: "report_stored_records",
    DELETE_STORED_RECORDS: "delete_stored_records",
    ABORT_OPERATION: "abort_operation",
    REPORT_NUMBER_OF_RECORDS: "report_number_of_records",
}
RESPONSE_CODES = {
    1: "success",
    2: "op_code_not_supported",
    3: "invalid_operator",
    4: "operator_not_supported",
    5: "invalid_operand",
    6: "no_records_found",
    7: "abort_unsuccessful",
    8: "procedure_not_completed",
    9: "operand_not_supported",
}
_SUCCESS_CODES = frozenset({1, 6})  # no records found is a finished download, not a failure
_RESPONSE_CODE_LEN = 4  # op code, null operator, request op code, response code
_COUNT_SIZES = frozenset({1, 2, 4})  # uint16 in the spec; uint8 and uint32 seen in the wild
_HEADER_LEN = 2  # op code + operator
_MAX_SEQUENCE = 0xFFFF


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """The end of a RACP procedure: which request it answers and how it ended."""

    characteristic: ClassVar[str] = RACP
    kind: ClassVar[str] = "racp_response"

    request_opcode: int
    request: str | None
    """The request's name (``report_stored_records`` ...); None for an op code we never send."""
    response_code: int
    response: str
    success: bool
    """True for ``success`` and ``no_records_found``: the procedure finished."""


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """The answer to "report number of stored records"."""

    characteristic: ClassVar[str] = RACP
    kind: ClassVar[str] = "racp_number_of_records"

    count: int


def parse_racp(
    data: bytes,
    *,
    quirks: frozenset[str] = frozenset(),  # noqa: ARG001 - every parser takes quirks
) -> RacpResponse | RacpNumberOfRecords:
    """Parse a RACP indication: a response code ``06 00 ..`` or a number of records ``05 00 ..``."""
    data = check_input(data, RACP)
    if len(data) < _HEADER_LEN + 1:
        raise ParseError(RACP, f"a response has at least 3 bytes, got {len(data)}")
    opcode, operator = data[0], data[1]
    if opcode not in {RESPONSE_CODE, NUMBER_OF_RECORDS_RESPONSE}:
        raise ParseError(RACP, f"op code {opcode} is not a response (5 or 6)")
    if operator != OPERATOR_NULL:
        raise ParseError(RACP, f"a response has the null operator, got {operator}")
    operand = data[_HEADER_LEN:]
    if opcode == NUMBER_OF_RECORDS_RESPONSE:
        if len(operand) not in _COUNT_SIZES:
            raise ParseError(RACP, f"a number of records has 1, 2 or 4 bytes, got {len(operand)}")
        return RacpNumberOfRecords(int.from_bytes(operand, "little"))
    if len(data) != _RESPONSE_CODE_LEN:
        raise ParseError(RACP, f"a response code is 4 bytes, got {len(data)}")
    request, code = operand
    response = RESPONSE_CODES.get(code)
    if response is None:
        raise ParseError(RACP, f"response code {code} is reserved")
    return RacpResponse(
        request_opcode=request,
        request=REQUEST_OPCODES.get(request),
        response_code=code,
        response=response,
        success=code in _SUCCESS_CODES,
    )


def build_report_all_records() -> bytes:
    """Request every stored record: ``01 01``."""
    return bytes((REPORT_STORED_RECORDS, OPERATOR_ALL))


def build_report_records_from(sequence: int) -> bytes:
    """Request the records with sequence number ≥ `sequence`: ``01 03 01 LL HH``.

    Raises:
        ValueError: `sequence` does not fit a uint16.
    """
    return bytes((REPORT_STORED_RECORDS, OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER)) + (
        _sequence(sequence)
    )


def build_report_number_of_records(from_sequence: int | None = None) -> bytes:
    """Ask how many records are stored (``04 01``) or are from a sequence on (``04 03 01 LL HH``).

    Raises:
        ValueError: `from_sequence` does not fit a uint16.
    """
    if from_sequence is None:
        return bytes((REPORT_NUMBER_OF_RECORDS, OPERATOR_ALL))
    return bytes(
        (REPORT_NUMBER_OF_RECORDS, OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER)
    ) + _sequence(from_sequence)


def build_delete_all_records() -> bytes:
    """Ask the device to delete every stored record: ``02 01``."""
    return bytes((DELETE_STORED_RECORDS, OPERATOR_ALL))


def build_abort_operation() -> bytes:
    """Abort the running procedure: ``03 00``."""
    return bytes((ABORT_OPERATION, OPERATOR_NULL))


def _sequence(sequence: int) -> bytes:
    if not 0 <= sequence <= _MAX_SEQUENCE:
        raise ValueError(f"sequence number {sequence} outside 0..65535")
    return sequence.to_bytes(2, "little")
