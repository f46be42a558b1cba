"""The virtual radio: an in-process bumble LocalLink, the hub's central adapter, the peripherals.

Tests and the demo create one ``VirtualRadio`` per event loop, add virtual peripherals to it, and
hand ``radio.scanner_backend`` / ``radio.client_backend`` to bleak's ``backend=`` parameter.
Everything above bleak then runs exactly as it does against BlueZ.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import core, hci, ll
from bumble.controller import Controller
from bumble.device import Advertisement, Connection, Device
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from hub.ble.bumble_backend.client import BumbleClient
from hub.ble.bumble_backend.scanner import BumbleScanner

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

CENTRAL_ADDRESS = "C0:FF:EE:00:00:01"
"""The hub adapter's static random address on the virtual air."""

DEFAULT_RSSI = -60
"""RSSI reported for a peripheral whose path loss nobody configured, in dBm."""

# Core Vol 1 Part F 1.3: the reasons a link ends.
LINK_LOST = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR  # 0x08: supervision timeout
REMOTE_TERMINATED = hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR  # 0x13
REMOTE_POWER_OFF = (
    hci.HCI_ErrorCode.REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR  # 0x15
)


class Attachable(Protocol):
    """Something that can put itself on a radio (every virtual peripheral)."""

    async def attach(self, radio: VirtualRadio) -> None:
        """Create the bumble device on ``radio`` and start advertising."""


_AttachableT = TypeVar("_AttachableT", bound=Attachable)


class _Air(LocalLink):
    """A LocalLink that knows who is powered and who listens, like the 2.4 GHz band would."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # LocalLink.__init__ lacks annotations
        self.powered_off: set[Controller] = set()

    def is_on(self, controller: Controller | None) -> bool:
        return controller is not None and controller not in self.powered_off

    def send_advertising_pdu(
        self, sender_controller: Controller, packet: ll.AdvertisingPdu
    ) -> None:
        if not self.is_on(sender_controller):
            return
        loop = asyncio.get_running_loop()
        for controller in list(self.controllers):
            if controller is sender_controller or not self.is_on(controller):
                continue
            # Only a scanner or an initiator has its receiver on the advertising channels; a
            # CONNECT_IND is addressed to an advertiser, which is always listening for it.
            if (
                isinstance(packet, ll.ConnectInd)
                or controller.le_scan_enable
                or controller.pending_le_connection is not None
            ):
                loop.call_soon(controller.on_ll_advertising_pdu, packet)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        destination = self.find_le_controller(destination_address)
        if self.is_on(sender_controller) and self.is_on(destination):
            super().send_acl_data(sender_controller, destination_address, transport, data)

    def send_ll_control_pdu(
        self,
        sender_address: hci.Address,
        receiver_address: hci.Address,
        packet: ll.ControlPdu,
    ) -> None:
        sender = self.find_le_controller(sender_address)
        receiver = self.find_le_controller(receiver_address)
        if self.is_on(sender) and self.is_on(receiver):
            super().send_ll_control_pdu(sender_address, receiver_address, packet)

    def power_off(self, controller: Controller) -> None:
        """Silence ``controller``; both ends of its links see a supervision timeout."""
        self.powered_off.add(controller)
        own = {controller.random_address, controller.public_address}
        for other in list(self.controllers):
            for peer, connection in list(other.le_connections.items()):
                if other is controller or peer in own:
                    other.on_le_disconnected(connection, LINK_LOST)

    def power_on(self, controller: Controller) -> None:
        self.powered_off.discard(controller)


class _CentralController(Controller):
    """The hub adapter's controller: per-device RSSI and a working LE Create Connection Cancel."""

    def __init__(self, name: str, link: _Air, rssi: Callable[[hci.Address], int]) -> None:
        super().__init__(name, link=link)
        self._rssi = rssi

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        # bumble's controller reports every advertiser at -50 dBm; the radio models path loss.
        if isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            packet = hci.HCI_LE_Extended_Advertising_Report_Event(
                [
                    dataclasses.replace(report, rssi=self._rssi(report.address))
                    for report in packet.reports
                ]
            )
        elif isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            packet = hci.HCI_LE_Advertising_Report_Event(
                [
                    dataclasses.replace(report, rssi=self._rssi(report.address))
                    for report in packet.reports
                ]
            )
        super().send_hci_packet(packet)

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        # Core Vol 4 Part E 7.8.13: a cancelled initiation ends with an LE Connection Complete event
        # carrying Unknown Connection Identifier, after the Command Complete. bumble's controller
        # forgets both, which leaves the host waiting forever after a connect timeout.
        pending = self.pending_le_connection
        self.pending_le_connection = None
        if pending is not None:
            event = hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
            asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


@dataclasses.dataclass
class _Node:
    controller: Controller
    device: Device


class VirtualRadio:
    """An in-process BLE air with the hub's central adapter on it; the only object tests build.

    ``scanner_backend`` and ``client_backend`` are bleak backend classes bound to this radio:
    ``BleakScanner(backend=radio.scanner_backend)``,
    ``BleakClient(device, backend=radio.client_backend)``.
    """

    def __init__(
        self, *, name: str = "virtual-radio", central_address: str = CENTRAL_ADDRESS
    ) -> None:
        self.name = name
        self.central_address = central_address
        self.scanner_backend: type[BumbleScanner] = type(
            "BumbleScanner", (BumbleScanner,), {"radio": self}
        )
        self.client_backend: type[BumbleClient] = type(
            "BumbleClient", (BumbleClient,), {"radio": self}
        )
        self._air: _Air | None = None
        self._central: Device | None = None
        self._nodes: dict[str, _Node] = {}
        self._rssi: dict[str, int] = {}
        self._connected: set[str] = set()
        self._advertisement_listeners: list[Callable[[Advertisement], None]] = []
        self._scan_users = 0
        self._scan_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create the air and power on the hub's central adapter (needs a running event loop)."""
        if self._air is not None:
            return
        self._air = _Air()
        controller = _CentralController("hub-central", self._air, self.rssi_of)
        central = Device(
            name="tecsa-hub",
            address=hci.Address(self.central_address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        central.keystore = MemoryKeyStore()  # the hub's bond database, like /var/lib/bluetooth
        # Virtual peripherals use static addresses. Without this, bumble's connect() scans for an
        # advertisement resolving to a bonded peer's identity, with no timeout, before connecting.
        central.address_resolution_offload = True
        central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await central.power_on()
        self._central = central

    async def stop(self) -> None:
        """Drop every link and silence every device; the radio cannot be restarted."""
        air = self._air
        if air is None:
            return
        for node in self._nodes.values():
            with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
                await node.device.stop_advertising()
        for controller in list(air.controllers):
            air.power_off(controller)
        self._advertisement_listeners.clear()

    # -- peripherals' side ------------------------------------------------------------------

    async def add(self, peripheral: _AttachableT) -> _AttachableT:
        """Put ``peripheral`` on the air (it creates its bumble device and advertises)."""
        await peripheral.attach(self)
        return peripheral

    async def create_device(self, address: str, name: str) -> Device:
        """Create and power on a bumble device with its own controller on the air."""
        air = self._require_air()
        key = address.upper()
        if key in self._nodes or key == self.central_address.upper():
            raise ValueError(f"address {address} is already on the radio")
        controller = Controller(f"virtual-{name}", link=air)
        device = Device(
            name=name,
            address=hci.Address(address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        device.keystore = MemoryKeyStore()
        await device.power_on()
        self._nodes[key] = _Node(controller, device)
        return device

    def power_off(self, address: str) -> None:
        """Cut the device's power: it stops advertising and its links time out at once."""
        air, node = self._air_and_node(address)
        air.power_off(node.controller)

    def power_on(self, address: str) -> None:
        """Give the device its power back (its own host state is kept, like a battery swap)."""
        air, node = self._air_and_node(address)
        air.power_on(node.controller)

    def is_powered(self, address: str) -> bool:
        """Whether the device at ``address`` is on the air."""
        air, node = self._air_and_node(address)
        return air.is_on(node.controller)

    def set_rssi(self, address: str, rssi: int) -> None:
        """Set the RSSI the hub's adapter reports for ``address``, in dBm."""
        self._rssi[address.upper()] = rssi

    def rssi_of(self, address: hci.Address | str) -> int:
        """Return the RSSI the hub's adapter reports for ``address``, in dBm."""
        text = (
            address.to_string(with_type_qualifier=False)
            if isinstance(address, hci.Address)
            else address
        )
        return self._rssi.get(text.upper(), DEFAULT_RSSI)

    # -- backends' side ---------------------------------------------------------------------

    @property
    def central(self) -> Device:
        """The hub's central adapter (a bumble device)."""
        if self._central is None:
            raise BleakError("the virtual radio is not started: await radio.start() first")
        return self._central

    def add_advertisement_listener(
        self, listener: Callable[[Advertisement], None]
    ) -> Callable[[], None]:
        """Call ``listener`` for every advertisement the adapter hears; returns the remover."""
        self._advertisement_listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._advertisement_listeners.remove(listener)

        return remove

    async def acquire_scanning(self) -> None:
        """Start the adapter's scan for one more user (scans are shared, as BlueZ shares them)."""
        async with self._scan_lock:
            self._scan_users += 1
            if self._scan_users == 1:
                await self.central.start_scanning(filter_duplicates=False)

    async def release_scanning(self) -> None:
        """Stop the adapter's scan when its last user is done."""
        async with self._scan_lock:
            if self._scan_users == 0:
                return
            self._scan_users -= 1
            if self._scan_users == 0:
                await self.central.stop_scanning()

    async def connect(self, address: str, connect_timeout: float) -> Connection:
        """Open an LE link to ``address``; attempts are serialised as in a controller."""
        key = address.upper()
        if key not in self._nodes:
            raise BleakDeviceNotFoundError(address, f"Device with address {address} was not found.")
        if key in self._connected:
            raise BleakError(f"{address} is already connected")
        async with self._connect_lock:
            try:
                connection: Connection = await self.central.connect(
                    hci.Address(key), timeout=connect_timeout
                )
            except core.TimeoutError as exc:
                raise TimeoutError(f"no connectable advertisement from {address}") from exc
            except core.BaseBumbleError as exc:
                raise BleakError(f"connection to {address} failed: {exc}") from exc
        self._connected.add(key)
        connection.on(Connection.EVENT_DISCONNECTION, lambda *_: self._connected.discard(key))
        return connection

    async def has_bond(self, address: str) -> bool:
        """Whether the adapter holds keys for ``address``."""
        keystore = self.central.keystore
        return keystore is not None and await keystore.get(address.upper()) is not None

    async def forget_bond(self, address: str) -> None:
        """Delete the adapter's keys for ``address`` (``bluetoothctl remove``)."""
        keystore = self.central.keystore
        if keystore is not None:
            await keystore.delete(address.upper())

    # -- private ----------------------------------------------------------------------------

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._advertisement_listeners):
            listener(advertisement)

    def _require_air(self) -> _Air:
        if self._air is None:
            raise RuntimeError("the virtual radio is not started: await radio.start() first")
        return self._air

    def _air_and_node(self, address: str) -> tuple[_Air, _Node]:
        air = self._require_air()
        try:
            return air, self._nodes[address.upper()]
        except KeyError:
            raise KeyError(f"no device {address} on the radio") from None
