"""The model triage reads on each batch, and the service that swaps it.

Triage takes `holder.current()` once per batch and scores the whole batch with it; a swap only
replaces the reference, so a batch in flight finishes on the model it started with and the next
batch uses the new one. Nothing waits, nothing is interrupted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from typing import TYPE_CHECKING

import structlog

from hub.commands.handler import CommandRefused
from hub.models.store import InstallResult, LoadedModel, ModelStore, ReleaseRefused
from wire.releases import MAX_RELEASE

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hub.commands.handler import KindHandler
    from hub.inference.runtime import TriageModel
    from wire.commands import Command

log = structlog.get_logger(__name__)

_MAX_BASE64 = (MAX_RELEASE + 2) // 3 * 4


class ModelHolder:
    """A reference to the model in use; reads are lock-free, swaps are atomic."""

    def __init__(self, loaded: LoadedModel | None = None) -> None:
        self._loaded = loaded
        self.refused: str | None = None
        """The version of the last release this hub refused (reported in up/status, so that
        the cloud does not send the same release again and again over a poor link)."""

    def current(self) -> LoadedModel | None:
        """The model to score the next batch with (None: NEWS2 only)."""
        return self._loaded

    def swap(self, loaded: LoadedModel | None) -> LoadedModel | None:
        """Put `loaded` in use; return the model it replaces."""
        old, self._loaded = self._loaded, loaded
        return old

    def triage_model(self) -> TriageModel | None:
        """The model triage passes to `hub.inference.triage` for the next batch (None: NEWS2)."""
        loaded = self._loaded
        return loaded.triage if loaded else None

    @property
    def version(self) -> str | None:
        """The version in use, as reported in up/status."""
        loaded = self._loaded
        return loaded.version if loaded else None


class ModelService:
    """Installs releases into the store and keeps the holder on the active model."""

    def __init__(self, store: ModelStore, holder: ModelHolder | None = None) -> None:
        self.store = store
        self.holder = holder or ModelHolder()
        self._lock = threading.Lock()

    def reload(self) -> LoadedModel | None:
        """Load the store's active model (or its fallbacks) into the holder; return it."""
        with self._lock:
            loaded = self.store.load_active()
            self.holder.swap(loaded)
        log.info("model_in_use", version=loaded.version if loaded else None)
        return loaded

    def install(self, sealed: bytes, *, allow_downgrade: bool = False) -> InstallResult:
        """Install a release (see `ModelStore.install`) and put it in use."""
        result = self.store.install(sealed, allow_downgrade=allow_downgrade)
        if self.holder.version != result.version:
            self.reload()
        return result

    def rollback(self) -> InstallResult:
        """Roll back to the previous model and put it in use."""
        result = self.store.rollback()
        self.reload()
        return result

    async def handle_model_release(self, data: Mapping[str, object]) -> InstallResult:
        """Handler of the `model_release` command: `data` is {"release": base64 of the release}.

        Raises `ReleaseRefused` (a HubError, `.reason` says why) and keeps the model in use
        when the release is malformed, unsigned, wrongly signed, tampered, a downgrade or fails
        its self-test.
        """
        release = data.get("release")
        if not isinstance(release, str) or not release or len(release) > _MAX_BASE64:
            raise ReleaseRefused("command data must be {'release': <base64 of the release>}")
        try:
            sealed = base64.b64decode(release, validate=True)
        except binascii.Error as exc:
            raise ReleaseRefused(f"release is not valid base64: {exc}") from None
        try:
            result = await asyncio.to_thread(self.install, sealed)
        except ReleaseRefused as exc:
            log.warning("model_release_refused", reason=exc.reason, version=exc.version)
            self.holder.refused = exc.version
            raise
        log.info("model_release_installed", version=result.version, status=result.status)
        self.holder.refused = None
        return result


def model_release_handler(service: ModelService) -> KindHandler:
    """The `CommandHandler` handler of `model_release`: a refused release is refused for good.

    Pass it as `handlers={CommandKind.MODEL_RELEASE: model_release_handler(service)}`.
    """

    async def apply(command: Command) -> None:
        try:
            await service.handle_model_release(command.data)
        except ReleaseRefused as exc:
            raise CommandRefused(exc.reason) from exc

    return apply
