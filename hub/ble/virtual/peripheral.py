"""The base of every virtual peripheral: a bumble device with a GATT server on a radio."""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import datetime as dt
import enum
import struct
from typing import TYPE_CHECKING, Any

from bumble import att, core, gatt, hci, pairing
from bumble.device import Connection, Device

from hub.ble.bumble_backend import DEFAULT_RSSI, REMOTE_TERMINATED
from hub.ble.virtual import encode

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from hub.ble.bumble_backend import VirtualRadio

# Core Supplement Part A 1.3: LE General Discoverable, BR/EDR not supported.
_ADV_FLAGS = bytes([0x02, 0x01, 0x06])
_AD_COMPLETE_UUID16 = 0x03
_AD_COMPLETE_NAME = 0x09
_AD_MANUFACTURER = 0xFF
LEGACY_ADVERTISING_LIMIT = 31  # Core Vol 6 Part B 2.3.1.1: AdvData is at most 31 bytes
CTS_DATA_FIELD_IGNORED = 0x80  # CTS 1.1 3.1.2.1: the application error for an ignored write
_CCCD_NOTIFY = 0x01
_CCCD_INDICATE = 0x02

P = gatt.Characteristic.Properties


class ClockStyle(enum.Enum):
    """How a device exposes its clock."""

    CURRENT_TIME = "current_time"  # Current Time Service 0x1805 / 0x2A2B (+ 0x2A0F)
    DATE_TIME = "date_time"  # a writable Date Time 0x2A08 in the device's own service (A&D, Roche)


@dataclasses.dataclass
class VirtualClock:
    """A device clock a hub may read and set; it does not tick on its own."""

    time: dt.datetime
    style: ClockStyle = ClockStyle.CURRENT_TIME
    refuse_writes: bool = False
    writes: list[bytes] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """Device Information Service 0x180A strings."""

    manufacturer: str = "Tecsa Virtual"
    model: str = "virtual"
    serial: str = "0001"
    firmware: str = "1.0.0"


def uuid16(value: int) -> core.UUID:
    """Return bumble's UUID for a 16-bit SIG number."""
    return core.UUID.from_16_bits(value)


class _RefusingDelegate(pairing.PairingDelegate):
    async def accept(self) -> bool:
        return False


class VirtualPeripheral(abc.ABC):
    """A configurable BLE peripheral; subclasses add their profile's service and test controls.

    Create it, then ``await radio.add(device)``. ``requires_bonding`` makes the profile's own
    characteristics and their CCCDs demand an encrypted link (ATT error 0x0F until the hub pairs).
    """

    service_uuid: int
    """The primary service's 16-bit UUID, also advertised."""

    def __init__(
        self,
        *,
        address: str,
        name: str,
        rssi: int = DEFAULT_RSSI,
        manufacturer_data: Mapping[int, bytes] | None = None,
        requires_bonding: bool = False,
        accept_pairing: bool = True,
        advertising_interval_ms: float = 20.0,
        max_mtu: int = 517,
        device_info: DeviceInfo | None = None,
        battery_level: int | None = 100,
        clock: VirtualClock | None = None,
    ) -> None:
        self.address = address.upper()
        self.name = name
        self.rssi = rssi
        self.manufacturer_data = dict(manufacturer_data or {})
        self.requires_bonding = requires_bonding
        self.accept_pairing = accept_pairing
        self.advertising_interval_ms = advertising_interval_ms
        self.max_mtu = max_mtu
        self.device_info = device_info or DeviceInfo(model=type(self).__name__)
        self.battery_level = battery_level
        self.clock = clock
        self.advertising_data = self._build_advertising_data()
        self._radio: VirtualRadio | None = None
        self._device: Device | None = None
        self._characteristics: dict[int, gatt.Characteristic[bytes]] = {}
        self._tasks: dict[Connection, set[asyncio.Task[None]]] = {}
        self._connections: list[Connection] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- subclass hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """Build the characteristics of the profile's primary service."""

    async def on_subscribed(  # noqa: B027 - an optional hook; most profiles only serve reads
        self, connection: Connection, uuid: int, cccd: int
    ) -> None:
        """React to a CCCD write on characteristic ``uuid`` (e.g. send stored readings)."""

    # -- test controls ----------------------------------------------------------------------

    @property
    def device(self) -> Device:
        """The bumble device (after ``attach``)."""
        if self._device is None:
            raise RuntimeError(f"{self.name} is not on a radio yet: await radio.add(device)")
        return self._device

    @property
    def radio(self) -> VirtualRadio:
        """The radio the device is on."""
        if self._radio is None:
            raise RuntimeError(f"{self.name} is not on a radio yet: await radio.add(device)")
        return self._radio

    @property
    def connections(self) -> tuple[Connection, ...]:
        """The live links to the hub."""
        return tuple(self._connections)

    @property
    def is_connected(self) -> bool:
        """Whether a central is connected."""
        return bool(self._connections)

    async def attach(self, radio: VirtualRadio) -> None:
        """Create the bumble device on ``radio``, build the GATT database and advertise."""
        device = await radio.create_device(self.address, self.name)
        self._radio, self._device = radio, device
        device.gatt_server.max_mtu = self.max_mtu
        if not self.accept_pairing:
            device.pairing_config_factory = lambda _connection: pairing.PairingConfig(
                delegate=_RefusingDelegate()
            )
        device.add_services(self._build_services())
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        radio.set_rssi(self.address, self.rssi)
        await device.start_advertising(
            auto_restart=True,
            advertising_data=self.advertising_data,
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )

    def vanish(self) -> None:
        """Lose power mid-whatever: no goodbye, the hub's link ends with a supervision timeout."""
        self.radio.power_off(self.address)

    def reappear(self) -> None:
        """Power back on; the device advertises again."""
        self.radio.power_on(self.address)

    async def disconnect(self, reason: int = REMOTE_TERMINATED) -> None:
        """Terminate every link politely (LL_TERMINATE_IND with ``reason``)."""
        for connection in list(self._connections):
            await connection.disconnect(reason)

    async def forget_bonds(self) -> None:
        """Drop every stored bond (a factory reset or a battery change on some cuffs)."""
        keystore = self.device.keystore
        if keystore is not None:
            for name, _keys in await keystore.get_all():
                await keystore.delete(name)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked on every link, subscription, data change."""
        if predicate():
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (predicate, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)

    def is_subscribed(self, uuid: int, connection: Connection | None = None) -> bool:
        """Whether a central enabled notifications or indications on ``uuid``."""
        return any(self._cccd(c, uuid) for c in self._links(connection))

    # -- helpers for subclasses -------------------------------------------------------------

    def characteristic(
        self,
        uuid: int,
        properties: gatt.Characteristic.Properties,
        *,
        value: bytes | None = None,
        read: Callable[[Connection], bytes] | None = None,
        write: Callable[[Connection, bytes], None] | None = None,
        secure: bool | None = None,
    ) -> gatt.Characteristic[bytes]:
        """Build a characteristic; ``secure`` (default: ``requires_bonding``) demands encryption."""
        secure = self.requires_bonding if secure is None else secure
        permissions = att.Attribute.Permissions(0)
        if properties & P.READ:
            permissions |= att.Attribute.READABLE
            if secure:
                permissions |= att.Attribute.READ_REQUIRES_ENCRYPTION
        if properties & (P.WRITE | P.WRITE_WITHOUT_RESPONSE):
            permissions |= att.Attribute.WRITEABLE
            if secure:
                permissions |= att.Attribute.WRITE_REQUIRES_ENCRYPTION
        if read is not None or write is not None:
            attribute_value: Any = gatt.CharacteristicValue(read=read, write=write)
        else:
            attribute_value = value if value is not None else b""
        characteristic = gatt.Characteristic(uuid16(uuid), properties, permissions, attribute_value)
        if secure and properties & (P.NOTIFY | P.INDICATE):
            characteristic.descriptors = [self._secure_cccd(characteristic)]
        self._characteristics[uuid] = characteristic
        return characteristic

    async def send(self, uuid: int, value: bytes, connection: Connection | None = None) -> int:
        """Notify or indicate ``value`` to each subscribed link (as its CCCD asks); return how many.

        An indication counts only once the hub confirmed it; a link that drops meanwhile does not.
        """
        characteristic = self._characteristics[uuid]
        delivered = 0
        for link in self._links(connection):
            cccd = self._cccd(link, uuid)
            if cccd & _CCCD_INDICATE:
                sent = self.device.indicate_subscriber(link, characteristic, value)
            elif cccd & _CCCD_NOTIFY:
                sent = self.device.notify_subscriber(link, characteristic, value)
            else:
                continue
            if await self._until_link_lost(link, sent):
                delivered += 1
        return delivered

    def spawn(self, connection: Connection, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a per-link procedure; it is cancelled when that link ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks = self._tasks.setdefault(connection, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def clock_time(self) -> dt.datetime:
        """The device clock's time (``VirtualClock.time``), or now if the device has no clock."""
        return self.clock.time if self.clock is not None else dt.datetime.now()  # noqa: DTZ005 - devices keep local wall-clock time without a zone

    # -- private ----------------------------------------------------------------------------

    def _build_advertising_data(self) -> bytes:
        data = _ADV_FLAGS
        data += _ad(_AD_COMPLETE_UUID16, struct.pack("<H", self.service_uuid))
        data += _ad(_AD_COMPLETE_NAME, self.name.encode())
        for company, payload in self.manufacturer_data.items():
            data += _ad(_AD_MANUFACTURER, struct.pack("<H", company) + payload)
        if len(data) > LEGACY_ADVERTISING_LIMIT:
            raise ValueError(
                f"advertising data is {len(data)} bytes, more than a legacy advertisement carries"
            )
        return data

    def _build_services(self) -> list[gatt.Service]:
        profile = self.profile_characteristics()
        if self.clock is not None and self.clock.style is ClockStyle.DATE_TIME:
            profile.append(
                self.characteristic(
                    0x2A08, P.READ | P.WRITE, read=self._read_date_time, write=self._write_date_time
                )
            )
        services = [gatt.Service(uuid16(self.service_uuid), profile)]
        info = self.device_info
        services.append(
            gatt.Service(
                uuid16(0x180A),
                [
                    self.characteristic(
                        0x2A29, P.READ, value=info.manufacturer.encode(), secure=False
                    ),
                    self.characteristic(0x2A24, P.READ, value=info.model.encode(), secure=False),
                    self.characteristic(0x2A25, P.READ, value=info.serial.encode(), secure=False),
                    self.characteristic(0x2A26, P.READ, value=info.firmware.encode(), secure=False),
                ],
            )
        )
        if self.battery_level is not None:
            services.append(
                gatt.Service(
                    uuid16(0x180F),
                    [
                        self.characteristic(
                            0x2A19,
                            P.READ | P.NOTIFY,
                            read=lambda _c: bytes([self.battery_level or 0]),
                            secure=False,
                        )
                    ],
                )
            )
        if self.clock is not None and self.clock.style is ClockStyle.CURRENT_TIME:
            services.append(
                gatt.Service(
                    uuid16(0x1805),
                    [
                        self.characteristic(
                            0x2A2B,
                            P.READ | P.WRITE | P.NOTIFY,
                            read=self._read_current_time,
                            write=self._write_current_time,
                            secure=False,
                        ),
                        # Local Time Information: UTC+0, standard time (vectors.md section 8).
                        self.characteristic(0x2A0F, P.READ, value=b"\x00\x00", secure=False),
                    ],
                )
            )
        return services

    def _secure_cccd(self, characteristic: gatt.Characteristic[bytes]) -> gatt.Descriptor:
        # bumble's automatic CCCD is always writable; a bonded-only profile refuses it unencrypted.
        permissions = (
            att.Attribute.READABLE
            | att.Attribute.WRITEABLE
            | att.Attribute.WRITE_REQUIRES_ENCRYPTION
        )
        return gatt.Descriptor(
            gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
            permissions,
            self.device.gatt_server.make_descriptor_value(characteristic),
        )

    def _links(self, connection: Connection | None) -> list[Connection]:
        return [connection] if connection is not None else list(self._connections)

    def _cccd(self, connection: Connection, uuid: int) -> int:
        characteristic = self._characteristics.get(uuid)
        if characteristic is None:
            return 0
        value = self.device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
        return int(value[0]) if value else 0

    async def _until_link_lost(
        self, connection: Connection, operation: Coroutine[Any, Any, Any]
    ) -> bool:
        """Await ``operation``; False if the link dropped first (bumble would wait 30 s for it)."""
        try:
            await connection.cancel_on_disconnection(operation)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return False
        except (core.BaseBumbleError, TimeoutError):
            return False
        return True

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        self._connections.append(connection)
        connection.on(
            Connection.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection(connection)
        )
        self.notify_change()

    def _on_disconnection(self, connection: Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        for task in self._tasks.pop(connection, set()):
            task.cancel()
        self.notify_change()

    def _on_subscription(
        self,
        connection: Connection,
        characteristic: gatt.Characteristic[bytes],
        notify: bool,
        indicate: bool,
    ) -> None:
        uuid = next((u for u, c in self._characteristics.items() if c is characteristic), None)
        self.notify_change()
        if uuid is None:
            return
        cccd = (_CCCD_NOTIFY if notify else 0) | (_CCCD_INDICATE if indicate else 0)
        self.spawn(connection, self.on_subscribed(connection, uuid, cccd))

    def notify_change(self) -> None:
        """Re-check the predicates of ``wait_for`` (subclasses call it when their state changes)."""
        for predicate, waiter in list(self._waiters):
            if not waiter.done() and predicate():
                waiter.set_result(None)

    # Clock characteristics.

    def _read_current_time(self, _connection: Connection) -> bytes:
        return encode.current_time(self.clock_time())

    def _write_current_time(self, connection: Connection, value: bytes) -> None:
        self._write_clock(value, expected=10)
        self.spawn(connection, self._notify_clock_change())

    async def _notify_clock_change(self) -> None:
        await self.send(
            0x2A2B, encode.current_time(self.clock_time(), adjust_reason=encode.ADJUST_MANUAL)
        )

    def _read_date_time(self, _connection: Connection) -> bytes:
        return encode.date_time(self.clock_time())

    def _write_date_time(self, _connection: Connection, value: bytes) -> None:
        self._write_clock(value, expected=7)

    def _write_clock(self, value: bytes, *, expected: int) -> None:
        clock = self.clock
        if clock is None:  # pragma: no cover - the characteristics exist only with a clock
            raise att.ATT_Error(error_code=att.ATT_WRITE_NOT_PERMITTED_ERROR)
        if len(value) != expected:
            raise att.ATT_Error(error_code=att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR)
        if clock.refuse_writes:
            raise att.ATT_Error(error_code=CTS_DATA_FIELD_IGNORED)
        year, month, day, hours, minutes, seconds = struct.unpack_from("<HBBBBB", value)
        try:
            clock.time = dt.datetime(year, month, day, hours, minutes, seconds)  # noqa: DTZ001 - Date Time has no zone
        except ValueError as exc:
            raise att.ATT_Error(error_code=CTS_DATA_FIELD_IGNORED) from exc
        clock.writes.append(bytes(value))
        self.notify_change()


def _ad(ad_type: int, payload: bytes) -> bytes:
    return bytes([len(payload) + 1, ad_type]) + payload
