"""Pure decoding of LE advertising data into the fields bleak's ``AdvertisementData`` carries."""

from __future__ import annotations

import dataclasses
import uuid

# Core Specification Supplement, Part A, section 1: AD type codes.
_AD_INCOMPLETE_UUID16 = 0x02
_AD_COMPLETE_UUID16 = 0x03
_AD_INCOMPLETE_UUID32 = 0x04
_AD_COMPLETE_UUID32 = 0x05
_AD_INCOMPLETE_UUID128 = 0x06
_AD_COMPLETE_UUID128 = 0x07
_AD_SHORT_NAME = 0x08
_AD_COMPLETE_NAME = 0x09
_AD_TX_POWER = 0x0A
_AD_SERVICE_DATA_UUID16 = 0x16
_AD_SERVICE_DATA_UUID32 = 0x20
_AD_SERVICE_DATA_UUID128 = 0x21
_AD_MANUFACTURER_DATA = 0xFF

_UUID_SIZES = {
    _AD_INCOMPLETE_UUID16: 2,
    _AD_COMPLETE_UUID16: 2,
    _AD_INCOMPLETE_UUID32: 4,
    _AD_COMPLETE_UUID32: 4,
    _AD_INCOMPLETE_UUID128: 16,
    _AD_COMPLETE_UUID128: 16,
}
_SERVICE_DATA_UUID_SIZES = {
    _AD_SERVICE_DATA_UUID16: 2,
    _AD_SERVICE_DATA_UUID32: 4,
    _AD_SERVICE_DATA_UUID128: 16,
}
_BLUETOOTH_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_COMPANY_ID_SIZE = 2
_MAX_ADVERTISING_DATA = (
    254  # Core Vol 4 Part E 7.7.65.13: extended report data is at most 254 bytes
)


@dataclasses.dataclass(frozen=True)
class ParsedAdvertisement:
    """One advertisement's AD structures in bleak's vocabulary (UUIDs as lowercase strings)."""

    local_name: str | None = None
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: dict[int, bytes] = dataclasses.field(default_factory=dict)
    service_data: dict[str, bytes] = dataclasses.field(default_factory=dict)
    tx_power: int | None = None


def uuid_from_le_bytes(raw: bytes) -> str:
    """Return the 128-bit lowercase string form of a 2-, 4- or 16-byte little-endian UUID."""
    if len(raw) in (2, 4):
        return f"{int.from_bytes(raw, 'little'):08x}{_BLUETOOTH_BASE_UUID_SUFFIX}"
    if len(raw) == 16:  # noqa: PLR2004 - a 128-bit UUID is 16 bytes
        return str(uuid.UUID(bytes=raw[::-1]))
    raise ValueError(f"a UUID is 2, 4 or 16 bytes, not {len(raw)}")


def parse_advertising_data(data: bytes) -> ParsedAdvertisement:
    """Decode AD structures (Core Vol 3 Part C 11); a truncated trailing structure is ignored."""
    structures = _split(data[:_MAX_ADVERTISING_DATA])
    complete = _first(structures, _AD_COMPLETE_NAME)
    short = _first(structures, _AD_SHORT_NAME)
    name = complete if complete is not None else short
    tx_power = _first(structures, _AD_TX_POWER)
    uuids: list[str] = []
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    for ad_type, value in structures:
        if ad_type in _UUID_SIZES:
            size = _UUID_SIZES[ad_type]
            for start in range(0, len(value) - size + 1, size):
                text = uuid_from_le_bytes(value[start : start + size])
                if text not in uuids:
                    uuids.append(text)
        elif ad_type == _AD_MANUFACTURER_DATA and len(value) >= _COMPANY_ID_SIZE:
            manufacturer.setdefault(int.from_bytes(value[:2], "little"), value[2:])
        elif (
            ad_type in _SERVICE_DATA_UUID_SIZES and len(value) >= _SERVICE_DATA_UUID_SIZES[ad_type]
        ):
            size = _SERVICE_DATA_UUID_SIZES[ad_type]
            service_data.setdefault(uuid_from_le_bytes(value[:size]), value[size:])
    return ParsedAdvertisement(
        local_name=None if name is None else name.decode("utf-8", errors="replace"),
        service_uuids=tuple(uuids),
        manufacturer_data=manufacturer,
        service_data=service_data,
        tx_power=(
            int.from_bytes(tx_power, "little", signed=True)
            if tx_power and len(tx_power) == 1
            else None
        ),
    )


def _split(data: bytes) -> list[tuple[int, bytes]]:
    structures: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        length = data[offset]
        if length == 0 or offset + 1 + length > len(data):
            break
        structures.append((data[offset + 1], data[offset + 2 : offset + 1 + length]))
        offset += 1 + length
    return structures


def _first(structures: list[tuple[int, bytes]], ad_type: int) -> bytes | None:
    return next((value for kind, value in structures if kind == ad_type), None)
