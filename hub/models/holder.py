"""The model triage reads on each batch, and the service that swaps it.

Triage takes `holder.current()` once per batch and scores the whole batch with it; a swap only
replaces the reference, so a batch in flight finishes on the model it started with and the next
batch uses the new one. Nothing waits, nothing is interrupted.

The holder is given the model checked but not loaded (a `ModelChoice`): the runtime (numpy and
LiteRT, about 30 MB of RSS with the interpreters) is loaded by the first `current()`, i.e. when
triage first has readings of a bound patient to score, once even when threads ask at the same
time. An idle hub never pays for it; `version` (up/status) is known without it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import time
from typing import TYPE_CHECKING

import structlog

from hub.commands.handler import CommandRefused
from hub.models.store import InstallResult, LoadedModel, ModelChoice, ModelStore, ReleaseRefused
from wire.releases import MAX_RELEASE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from hub.commands.handler import KindHandler
    from hub.inference.manifest import TriageModel
    from wire.commands import Command

log = structlog.get_logger(__name__)

_MAX_BASE64 = (MAX_RELEASE + 2) // 3 * 4


class ModelHolder:
    """A reference to the model in use; swaps are atomic, the first use loads it (once)."""

    def __init__(self, model: LoadedModel | ModelChoice | None = None) -> None:
        self._slot = _Slot(model)
        self.refused: str | None = None
        """The version of the last release this hub refused (reported in up/status, so that
        the cloud does not send the same release again and again over a poor link)."""
        self.on_change: Callable[[], None] | None = None
        """Called, from the loading thread, when loading changed `version`: the chosen model
        could not be loaded, another one (or none: NEWS2 alone) is in use."""

    def current(self) -> LoadedModel | None:
        """The model to score the next batch with (None: NEWS2 only); loads it on first use."""
        return self._slot.get(self.on_change)

    def swap(self, model: LoadedModel | ModelChoice | None) -> None:
        """Put `model` in use (a `ModelChoice` is loaded by the next `current()`)."""
        self._slot = _Slot(model)

    def triage_model(self) -> TriageModel | None:
        """The model triage passes to `hub.inference.triage` for the next batch (None: NEWS2)."""
        loaded = self.current()
        return loaded.triage if loaded else None

    @property
    def version(self) -> str | None:
        """The version in use, as reported in up/status; never loads the model."""
        return self._slot.version

    @property
    def loaded(self) -> bool:
        """False while the model in use waits for its first `current()`."""
        return self._slot.done


class _Slot:
    """One model put in use: loaded already, or loaded by the first `get()` under a lock."""

    __slots__ = ("_choice", "_loaded", "_lock", "done")

    def __init__(self, model: LoadedModel | ModelChoice | None) -> None:
        self._lock = threading.Lock()
        if isinstance(model, ModelChoice):
            self._choice: ModelChoice | None = model
            self._loaded: LoadedModel | None = None
            self.done = False
        else:
            self._choice, self._loaded, self.done = None, model, True

    @property
    def version(self) -> str | None:
        if self.done or self._choice is None:
            return self._loaded.version if self._loaded else None
        return self._choice.version

    def get(self, on_change: Callable[[], None] | None) -> LoadedModel | None:
        if self.done:  # set only after _loaded: a reader that sees it sees the model
            return self._loaded
        with self._lock:
            if self.done or self._choice is None:
                return self._loaded
            self._loaded = _load(self._choice)
            self.done = True
        if on_change is not None and self.version != self._choice.version:
            on_change()
        return self._loaded


def _load(choice: ModelChoice) -> LoadedModel | None:
    """Load a chosen model; any failure means NEWS2 alone (logged), as when the model fails."""
    start = time.perf_counter()
    try:
        loaded = choice.load()
    except Exception:  # never the end of triage: the engine scores with NEWS2 alone
        log.exception("model_load_failed", version=choice.version, fallback="news2_only")
        return None
    if loaded is None:
        log.error("model_load_failed", version=choice.version, fallback="news2_only")
        return None
    log.info(
        "model_loaded",
        version=loaded.version,
        chosen=choice.version,
        source=loaded.source,
        ms=round((time.perf_counter() - start) * 1000, 1),
    )
    return loaded


class ModelService:
    """Installs releases into the store and keeps the holder on the active model."""

    def __init__(self, store: ModelStore, holder: ModelHolder | None = None) -> None:
        self.store = store
        self.holder = holder or ModelHolder()
        self._lock = threading.Lock()

    def reload(self) -> ModelChoice | None:
        """Put the store's active model (or its fallbacks) in the holder; return the choice.

        Releases are verified here; the runtime is loaded by the holder's first `current()`.
        """
        with self._lock:
            choice = self.store.choose_active()
            self.holder.swap(choice)
        log.info("model_in_use", version=choice.version if choice else None, loaded=False)
        return choice

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
