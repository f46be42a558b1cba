import pytest

from hub.ble.parsers import (
    ParseError,
    RacpNumberOfRecords,
    RacpResponse,
    build_abort_operation,
    build_delete_all_records,
    build_report_all_records,
    build_report_number_of_records,
    build_report_records_from,
)
from hub.ble.parsers.racp import parse_racp


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_requests():
    assert build_report_all_records() == h("01 01")  # R1
    assert build_report_number_of_records() == h("04 01")  # R2
    assert build_report_records_from(12) == h("01 03 01 0C 00")  # R3
    assert build_abort_operation() == h("03 00")  # R4
    assert build_report_records_from(0x1234) == h("01 03 01 34 12")
    assert build_report_number_of_records(from_sequence=258) == h("04 03 01 02 01")
    assert build_delete_all_records() == h("02 01")
    for bad in (-1, 0x10000):
        with pytest.raises(ValueError, match="sequence"):
            build_report_records_from(bad)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (  # R5
            "06 00 01 01",
            RacpResponse(
                request_opcode=1,
                request="report_stored_records",
                response_code=1,
                response="success",
                success=True,
            ),
        ),
        (  # R6
            "06 00 01 06",
            RacpResponse(
                request_opcode=1,
                request="report_stored_records",
                response_code=6,
                response="no_records_found",
                success=True,
            ),
        ),
        (  # R7
            "06 00 0C 02",
            RacpResponse(
                request_opcode=12,
                request=None,
                response_code=2,
                response="op_code_not_supported",
                success=False,
            ),
        ),
        (  # R8
            "06 00 01 03",
            RacpResponse(1, "report_stored_records", 3, "invalid_operator", success=False),
        ),
        (
            "06 00 02 04",
            RacpResponse(2, "delete_stored_records", 4, "operator_not_supported", success=False),
        ),
        (
            "06 00 01 05",
            RacpResponse(1, "report_stored_records", 5, "invalid_operand", success=False),
        ),
        (
            "06 00 03 07",
            RacpResponse(3, "abort_operation", 7, "abort_unsuccessful", success=False),
        ),
        (
            "06 00 02 08",
            RacpResponse(2, "delete_stored_records", 8, "procedure_not_completed", success=False),
        ),
        (
            "06 00 02 09",
            RacpResponse(2, "delete_stored_records", 9, "operand_not_supported", success=False),
        ),
        (
            "06 00 04 01",
            RacpResponse(4, "report_number_of_records", 1, "success", success=True),
        ),
        ("05 00 01", RacpNumberOfRecords(count=1)),  # R9
        ("05 00 02 01", RacpNumberOfRecords(count=258)),
        ("05 00 04 03 02 01", RacpNumberOfRecords(count=16909060)),
        ("05 00 00 00", RacpNumberOfRecords(count=0)),
    ],
)
def test_responses(vector, expected):
    assert parse_racp(h(vector)) == expected


@pytest.mark.parametrize(
    "vector",
    [
        "05 00 03 02 01",  # R10: 3-byte count
        "01 01",  # R11: too short
        "01 03 01 02 00",  # R11: a request op code
        "06 01 01",  # R11: non-null operator
        "06 01 01 01",
        "06 00 01",
        "06 00 01 01 00",
        "06 00 01 00",  # reserved response code
        "06 00 01 0A",
        "05 00",
        "05 00 01 02 03 04 05",
        "",
    ],
)
def test_invalid(vector):
    with pytest.raises(ParseError):
        parse_racp(h(vector))
