"""bleak's client interface on a virtual radio: each call is real ATT/SMP traffic on the air."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, gatt, hci
from bumble.device import Connection

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from bleak.args import SizedBuffer
    from bumble.gatt_client import CharacteristicProxy, Client

    from hub.ble.bumble_backend.radio import VirtualRadio

_T = TypeVar("_T")

# BlueZ asks every peripheral for the largest ATT MTU (Core Vol 3 Part F 3.2.8: 517 bytes).
REQUESTED_MTU = 517
_DEFAULT_MTU = att.ATT_DEFAULT_MTU  # 23, Core Vol 3 Part F 3.2.8
_ATT_HEADER = 3  # opcode + handle in a Write Command / Notification
# ATT errors after which BlueZ raises the link's security and retries (Core Vol 3 Part F 3.4.1.1).
_SECURITY_ERRORS = frozenset(
    {att.ATT_INSUFFICIENT_ENCRYPTION_ERROR, att.ATT_INSUFFICIENT_AUTHENTICATION_ERROR}
)


class BumbleClient(BaseBleakClient):
    """A bleak client backend; use the subclass bound to a radio, ``radio.client_backend``."""

    radio: ClassVar[VirtualRadio]

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        **kwargs: Any,  # noqa: ANN401 - bleak passes platform arguments (bluez=, winrt=) we ignore
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        del kwargs
        self.address = self.address.upper()
        self._device_name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._requested_services = services
        self._connection: Connection | None = None
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}

    # -- connectivity -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The advertised name, else the address with dashes (as BlueZ shows it)."""
        return self._device_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        """The ATT MTU negotiated on the current link."""
        return int(self._connection.att_mtu) if self._connection is not None else _DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        """Whether the LE link is up."""
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:  # noqa: ANN401 - bleak's signature
        """Connect, exchange MTU, optionally pair, and discover services."""
        if self._connection is not None:
            raise BleakError("Client is already connected")
        timeout = float(kwargs.get("timeout", self._timeout))
        connection = await self.radio.connect(self.address, timeout)
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            await self._gatt(lambda: connection.gatt_client.request_mtu(REQUESTED_MTU))
            if pair:
                await self.pair()
            self.services = await self._gatt(self._discover_services)
        except BaseException:
            with contextlib.suppress(BleakError, core.BaseBumbleError, hci.HCI_Error):
                await self.disconnect()
            raise

    async def disconnect(self) -> None:
        """Terminate the link (Remote User Terminated Connection) and wait until it is down."""
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            if self._connection is not None:
                raise BleakError(f"disconnect from {self.address} failed: {exc}") from exc

    async def pair(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - bleak's signature
        """Pair and bond (LE Secure Connections, Just Works); encrypt with an existing bond."""
        del args, kwargs
        connection = self._require_connection()
        if connection.is_encrypted:
            return
        try:
            if await self.radio.has_bond(self.address):
                await connection.encrypt()
            else:
                await connection.pair()
        except asyncio.CancelledError:
            self._raise_if_link_lost()
            raise
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        """Forget the bond and disconnect, as BlueZ's RemoveDevice does."""
        await self.radio.forget_bond(self.address)
        await self.disconnect()

    # -- GATT -------------------------------------------------------------------------------

    async def read_gatt_char(
        self,
        characteristic: BleakGATTCharacteristic,
        *,
        use_cached: bool = False,
        **kwargs: Any,  # noqa: ANN401 - bleak's signature
    ) -> bytearray:
        """Read a characteristic value (ATT Read, then Read Blob for long values)."""
        del kwargs
        client = self._require_connection().gatt_client
        if use_cached and (cached := client.cached_values.get(characteristic.handle)):
            return bytearray(cached[1])
        value: bytes = await self._gatt(lambda: client.read_value(characteristic.handle))
        return bytearray(value)

    async def read_gatt_descriptor(
        self,
        descriptor: BleakGATTDescriptor,
        *,
        use_cached: bool = False,
        **kwargs: Any,  # noqa: ANN401 - bleak's signature
    ) -> bytearray:
        """Read a descriptor value."""
        del kwargs
        client = self._require_connection().gatt_client
        if use_cached and (cached := client.cached_values.get(descriptor.handle)):
            return bytearray(cached[1])
        value: bytes = await self._gatt(lambda: client.read_value(descriptor.handle))
        return bytearray(value)

    async def write_gatt_char(
        self,
        characteristic: BleakGATTCharacteristic,
        data: SizedBuffer,
        response: bool,
    ) -> None:
        """Write a characteristic value (ATT Write Request if ``response``, else Write Command)."""
        client = self._require_connection().gatt_client
        payload = bytes(data)
        await self._gatt(
            lambda: client.write_value(characteristic.handle, payload, with_response=response)
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        """Write a descriptor value with response."""
        client = self._require_connection().gatt_client
        payload = bytes(data)
        await self._gatt(lambda: client.write_value(descriptor.handle, payload, with_response=True))

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,  # noqa: ANN401 - bleak passes bluez=/cb= arguments we ignore
    ) -> None:
        """Write the CCCD (notify preferred); the callback is live before the write."""
        del kwargs
        client = self._require_connection().gatt_client
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        if proxy.get_descriptor(gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR) is None:
            raise BleakError(f"characteristic {characteristic.uuid} has no CCCD to subscribe with")

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        previous = self._subscriptions.pop(characteristic.handle, None)
        if previous is not None:
            _forget_subscriber(client, proxy, previous)
        self._subscriptions[characteristic.handle] = on_value
        try:
            await self._gatt(lambda: client.subscribe(proxy, on_value, prefer_notify=True))
        except BaseException:
            self._subscriptions.pop(characteristic.handle, None)
            _forget_subscriber(client, proxy, on_value)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Write zero to the CCCD and drop the callback."""
        client = self._require_connection().gatt_client
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        self._subscriptions.pop(characteristic.handle, None)
        await self._gatt(lambda: client.unsubscribe(proxy, force=True))

    # -- private ----------------------------------------------------------------------------

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError("Not connected")
        return self._connection

    def _raise_if_link_lost(self) -> None:
        """Turn bumble's cancellation of in-flight requests on link loss into bleak's error."""
        task = asyncio.current_task()
        if self._connection is None and (task is None or task.cancelling() == 0):
            raise BleakError(f"{self.address} disconnected during the operation")

    async def _gatt(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run one ATT procedure; re-encrypt with a stored bond once if security is insufficient."""
        connection = self._require_connection()
        try:
            try:
                return await operation()
            except att.ATT_Error as exc:
                if (
                    exc.error_code not in _SECURITY_ERRORS
                    or connection.is_encrypted
                    or not await self.radio.has_bond(self.address)
                ):
                    raise
                await connection.encrypt()
                return await operation()
        except asyncio.CancelledError:
            self._raise_if_link_lost()
            raise
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except (core.TimeoutError, TimeoutError) as exc:
            self._raise_if_link_lost()
            raise BleakError(f"GATT request to {self.address} timed out") from exc
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            self._raise_if_link_lost()
            raise BleakError(f"GATT request to {self.address} failed: {exc}") from exc

    async def _discover_services(self) -> BleakGATTServiceCollection:
        client: Client = self._require_connection().gatt_client
        collection = BleakGATTServiceCollection()
        for service_proxy in await client.discover_services():
            service_uuid = _uuid_text(service_proxy.uuid)
            if (
                self._requested_services is not None
                and service_uuid not in self._requested_services
            ):
                continue
            service = BleakGATTService(service_proxy, service_proxy.handle, service_uuid)
            collection.add_service(service)
            for char_proxy in await service_proxy.discover_characteristics():
                characteristic = BleakGATTCharacteristic(
                    char_proxy,
                    char_proxy.handle,
                    _uuid_text(char_proxy.uuid),
                    _property_names(int(char_proxy.properties)),
                    lambda: self.mtu_size - _ATT_HEADER,
                    service,
                )
                collection.add_characteristic(characteristic)
                for descriptor_proxy in await char_proxy.discover_descriptors():
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor_proxy,
                            descriptor_proxy.handle,
                            _uuid_text(descriptor_proxy.type),
                            characteristic,
                        )
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        del reason
        self._connection = None
        self._subscriptions.clear()
        self.services = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()


def _uuid_text(uuid: core.UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-"))


def _property_names(properties: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if properties & bit]


def _forget_subscriber(
    client: Client, proxy: CharacteristicProxy[bytes], subscriber: Callable[[bytes], None]
) -> None:
    """Undo what bumble's ``subscribe`` registered before its CCCD write."""
    for table in (client.notification_subscribers, client.indication_subscribers):
        subscribers = table.get(proxy.handle)
        if subscribers is None:
            continue
        subscribers.discard(subscriber)
        if subscribers == {proxy}:
            subscribers.clear()
        if not subscribers:
            del table[proxy.handle]
