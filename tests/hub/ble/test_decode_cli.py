import json

import pytest
from typer.testing import CliRunner

from hub.ble.cli import EXIT_INVALID_BYTES, EXIT_USAGE, app

runner = CliRunner()
BP3 = "00 BD F0 0B 00 9F F0"
BP3_JSON = {
    "characteristic": "2a35",
    "kind": "blood_pressure",
    "values": {
        "systolic": {"value": 18.9, "unit": "mm[Hg]"},
        "diastolic": {"value": 11.0, "unit": "mm[Hg]"},
        "mean_arterial": {"value": 15.9, "unit": "mm[Hg]"},
    },
    "device_time": None,
    "flags": [],
    "patient_reading": True,
    "extra": {},
}


def decode(*args):
    return runner.invoke(app, ["decode", *args])


@pytest.mark.parametrize(
    "uuid",
    ["2a35", "2A35", "0x2a35", "0X2A35", "00002a35-0000-1000-8000-00805f9b34fb"],
)
def test_every_uuid_spelling(uuid):
    result = decode(uuid, BP3)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == BP3_JSON
    assert result.stderr == ""


@pytest.mark.parametrize(
    "hex_args",
    [
        [BP3],
        ["00bdf00b009ff0"],
        ["00:BD:F0:0B:00:9F:F0"],
        ["00BD", "F00B", "009F", "F0"],
        ["0x00BDF00B009FF0"],
    ],
)
def test_hex_spellings(hex_args):
    result = decode("2a35", *hex_args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == BP3_JSON


def test_output_is_one_json_object_in_the_documented_order():
    result = decode("2a1c", "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    assert list(json.loads(result.stdout)) == [
        "characteristic",
        "kind",
        "values",
        "device_time",
        "flags",
        "patient_reading",
        "extra",
    ]
    assert '"value": 37.6,' in result.stdout


def test_quirk_option():
    bp10 = "56 6A 00 47 00 00 00 EA 07 08 0B 12 1F 00 00 3F 00 00 00"
    strict = decode("2a35", bp10)
    assert strict.exit_code == EXIT_INVALID_BYTES
    assert "reserved flag bits" in strict.stderr
    quirked = decode("2a35", bp10, "--quirk", "beurer_bm85")
    assert quirked.exit_code == 0, quirked.stderr
    out = json.loads(quirked.stdout)
    assert out["values"]["systolic"]["value"] == 106.0
    assert out["values"]["pulse"]["value"] == 63.0
    assert out["device_time"] == "2026-08-11T18:31:00"
    assert out["extra"] == {"user_id": 0}


def test_non_measurement_output():
    result = decode("2a52", "06 00 01 06")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "characteristic": "2a52",
        "kind": "racp_response",
        "request_opcode": 1,
        "request": "report_stored_records",
        "response_code": 6,
        "response": "no_records_found",
        "success": True,
    }


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["2a35", "zz"], EXIT_USAGE, "hex digits"),
        (["2a35", "0BD"], EXIT_USAGE, "hex digits"),
        (["2a35", "00" * 513], EXIT_USAGE, "512"),
        (["2a35", "01 02 03 04 05 06"], EXIT_INVALID_BYTES, "declare 7 bytes, got 6"),
        (["2a35", ""], EXIT_INVALID_BYTES, "invalid 2a35 value"),
        (["2a99", "00"], EXIT_USAGE, "no parser for characteristic 2a99"),
        (["blood", "00"], EXIT_USAGE, "not a 16-bit UUID"),
        (["2a35", BP3, "--quirk", "nope"], EXIT_USAGE, "unknown quirk"),
    ],
)
def test_errors_go_to_stderr_without_a_traceback(args, code, reason):
    result = decode(*args)
    assert result.exit_code == code
    assert reason in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_teaches():
    result = runner.invoke(app, ["decode", "--help"])
    assert result.exit_code == 0
    assert "tecsa-hub ble decode 2a35" in result.stdout
    assert "--quirk" in result.stdout
    assert "beurer_bm85" in result.stdout
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_scan_virtual_lists_every_kind_of_device_with_its_profile():
    result = runner.invoke(app, ["scan", "--virtual", "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    found = {d["address"]: d["profile"] for d in json.loads(result.stdout)}
    assert found == {
        "D0:00:00:00:00:01": "blood_pressure",
        "D0:00:00:00:00:02": "health_thermometer",
        "D0:00:00:00:00:03": "pulse_oximeter",
        "D0:00:00:00:00:04": "glucose",
        "D0:00:00:00:00:05": "weight_scale",
        "D0:00:00:00:00:06": "heart_rate",
    }


def test_scan_without_bluetooth_explains_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    result = runner.invoke(app, ["scan", "--seconds", "0.5"])
    assert result.exit_code == 2
    assert "Bluetooth is not available" in result.stderr
