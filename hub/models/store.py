"""The hub's model directory: verified releases, the active one, the previous one.

Layout under `models.dir` (hub config):

    <version>/release.bin     the signed release exactly as received (re-verified on every load)
    <version>/manifest.json   its manifest, for people
    <version>/model.tflite    its int8 model, for people and tools
    active                    the active version's name
    previous                  the version active before it (what `rollback` restores)
    .lock                     held (flock) by whoever changes the directory

`install` verifies the signature with the cloud signing key, then the checksum, runs the
manifest's self-test vectors in a fresh interpreter, writes and fsyncs the version directory
and only then swaps the pointers (temp file + fsync + os.replace). A crash at any point leaves
the previous model active and the directory usable: leftovers (`.staging-*`, unreferenced
versions) are removed by the next change.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from hub.errors import HubError
from hub.inference.manifest import ModelError, check_artifact, parse_manifest
from wire.errors import WireError
from wire.releases import VERSION_PATTERN, Release, ReleaseManifest, open_release, version_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from importlib.resources.abc import Traversable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from hub.inference.manifest import TriageModel

log = structlog.get_logger(__name__)

ACTIVE = "active"
PREVIOUS = "previous"
RELEASE_FILE = "release.bin"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.tflite"
_STAGING = ".staging-"
_DEFAULT_PACKAGE = "hub.inference"
_DEFAULT_DIR = "default_model"
_MAX_POINTER = 256


class Model(Protocol):
    """What the self-test needs: normalised input rows in, probabilities out."""

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """The probability of deterioration for each row."""
        ...


class ReleaseRefused(HubError):
    """A release was not installed; `reason` says why and the active model is unchanged."""

    def __init__(self, reason: str, *, version: str | None = None) -> None:
        super().__init__(f"model release refused: {reason}")
        self.reason = reason
        self.version = version


class NoPreviousModel(HubError):
    """There is no previous model to roll back to."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to score, with what it is."""

    version: str
    model: Model
    """The bare interpreter (normalised rows in), as the self-test ran it."""
    source: Literal["release", "default"]
    manifest: ReleaseManifest | None = None
    triage: TriageModel | None = None
    """What triage calls (raw feature rows in, probability and band out); None when the
    release carries no runtime manifest (features, normalisation, band thresholds)."""


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model to use, checked without its runtime; `load()` loads it (numpy, LiteRT).

    Checked means: a release's signature (which covers its checksum) verifies, or the bundled
    default's manifest parses, names this hub's features and matches its artifact. `load()`
    returns what `ModelStore.load_active` would: when the runtime refuses the chosen model it is
    logged (`model_unusable`, `default_model_unusable`) and the next one is loaded (previous,
    then default), or None (NEWS2 alone). Every call loads anew: `ModelHolder` calls it once.
    """

    version: str
    source: Literal["release", "default"]
    load: Callable[[], LoadedModel | None]


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """One version in the models directory, as `tecsa-hub models list` shows it."""

    version: str
    state: Literal["active", "previous", "installed"]
    created_at: str | None
    artifact_sha256: str | None
    feature_spec: str | None
    valid: bool
    """False when its release no longer verifies (disk corruption, tampering)."""


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What `install` did."""

    version: str
    status: Literal["activated", "already_active"]
    previous: str | None


class ModelStore:
    """Install, list, activate and roll back signed model releases in one directory."""

    def __init__(
        self,
        directory: Path,
        cloud_key: Ed25519PublicKey,
        *,
        model_factory: Callable[[bytes], Model] | None = None,
        failpoint: Callable[[str], None] | None = None,
        default: Traversable | None = None,
    ) -> None:
        self.dir = directory
        self._default = default
        self._cloud_key = cloud_key
        self._factory = model_factory or litert_interpreter
        self._failpoint = failpoint or (lambda _name: None)

    # ---- reading

    def active_version(self) -> str | None:
        """The active version's name, or None when none is installed."""
        return self._pointer(ACTIVE)

    def previous_version(self) -> str | None:
        """The previous version's name, or None."""
        return self._pointer(PREVIOUS)

    def installed(self) -> list[InstalledModel]:
        """Every installed version, newest first, with its state."""
        active, previous = self.active_version(), self.previous_version()
        out: list[InstalledModel] = []
        if not self.dir.is_dir():
            return out
        for path in self.dir.iterdir():
            if not path.is_dir() or path.name.startswith("."):
                continue
            release = self._verified(path.name)
            manifest = release.manifest if release else None
            state: Literal["active", "previous", "installed"] = (
                "active"
                if path.name == active
                else "previous"
                if path.name == previous
                else "installed"
            )
            out.append(
                InstalledModel(
                    version=path.name,
                    state=state,
                    created_at=manifest.created_at.isoformat() if manifest else None,
                    artifact_sha256=manifest.artifact_sha256 if manifest else None,
                    feature_spec=manifest.feature_spec if manifest else None,
                    valid=release is not None,
                )
            )
        return sorted(out, key=lambda m: version_key(m.version), reverse=True)

    def load_active(self) -> LoadedModel | None:
        """The active model, else the previous one, else the bundled default, else None.

        Every installed release is verified again before it is loaded: a corrupted file on the
        SD card never becomes a model that scores patients.
        """
        choice = self.choose_active()
        return choice.load() if choice is not None else None

    def choose_active(self) -> ModelChoice | None:
        """What `load_active` would load, verified but not loaded (no numpy, no LiteRT)."""
        return self._choose([self.active_version(), self.previous_version()])

    # ---- changing

    def install(self, sealed: bytes, *, allow_downgrade: bool = False) -> InstallResult:
        """Verify, self-test and activate a release; raise `ReleaseRefused` with the reason."""
        release = self._open(sealed)
        version = release.version
        with self._locked():
            active = self.active_version()
            if version == active and self._verified(version) is not None:
                return InstallResult(version, "already_active", self.previous_version())
            if (
                active is not None
                and not allow_downgrade
                and version_key(version) < version_key(active)
            ):
                raise ReleaseRefused(
                    f"{version} is older than the active {active}; a downgrade must be explicit "
                    "(tecsa-hub models install --allow-downgrade, or rollback)",
                    version=version,
                )
            self_test(release, self._factory)
            try:
                _loaded(release, self._factory)
            except ModelError as exc:
                raise ReleaseRefused(f"this hub cannot run it: {exc}", version=version) from exc
            self._place(release)
            self._failpoint("placed")
            if active is not None and active != version:  # not when repairing a damaged copy
                _write_pointer(self.dir / PREVIOUS, active)
            self._failpoint("previous_written")
            _write_pointer(self.dir / ACTIVE, version)
            self._cleanup()
        previous = self.previous_version()
        log.info("model_activated", version=version, previous=previous)
        return InstallResult(version, "activated", previous)

    def rollback(self) -> InstallResult:
        """Make the previous model active again (the active one becomes the previous)."""
        with self._locked():
            active, previous = self.active_version(), self.previous_version()
            if previous is None or previous == active:
                raise NoPreviousModel("there is no previous model to roll back to")
            release = self._verified(previous)
            if release is None:
                raise NoPreviousModel(f"the previous model {previous} no longer verifies")
            self_test(release, self._factory)
            if active is not None:
                _write_pointer(self.dir / PREVIOUS, active)
            _write_pointer(self.dir / ACTIVE, previous)
        log.info("model_rolled_back", version=previous, previous=active)
        return InstallResult(previous, "activated", active)

    # ---- private

    def _choose(self, names: Sequence[str | None]) -> ModelChoice | None:
        """The first of `names` whose release verifies, else the bundled default, else None."""
        for n, name in enumerate(names):
            if name is None:
                continue
            release = self._verified(name)
            if release is None:
                log.error("model_unusable", version=name)
                continue
            load = functools.partial(self._load_release, release, names[n + 1 :])
            return ModelChoice(name, "release", load)
        return choose_default(self._factory, self._default)

    def _load_release(
        self, release: Release, fallbacks: Sequence[str | None]
    ) -> LoadedModel | None:
        """The release's model; if this hub cannot run it, the next of `fallbacks` (or default)."""
        try:
            return _loaded(release, self._factory)
        except ModelError as exc:
            log.error("model_unusable", version=release.version, error=str(exc))
        fallback = self._choose(fallbacks)
        return fallback.load() if fallback is not None else None

    def _open(self, sealed: bytes) -> Release:
        try:
            return open_release(sealed, cloud_key=self._cloud_key)
        except WireError as exc:
            raise ReleaseRefused(str(exc)) from exc

    def _verified(self, name: str) -> Release | None:
        try:
            data = (self.dir / name / RELEASE_FILE).read_bytes()
            release = open_release(data, cloud_key=self._cloud_key)
        except (OSError, WireError):
            return None
        return release if release.version == name else None

    def _place(self, release: Release) -> None:
        """Write the version directory through a staging directory; fsync everything."""
        final = self.dir / release.version
        if final.exists():
            existing = self._verified(release.version)
            if existing is not None and existing.sealed == release.sealed:
                return
            if existing is not None:
                raise ReleaseRefused(
                    f"version {release.version} is installed with different content; "
                    "a version is never reused",
                    version=release.version,
                )
            shutil.rmtree(final)  # a damaged copy of this version: replace it
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.dir))
        manifest = release.manifest.model_dump(mode="json", exclude_none=True)
        for name, data in (
            (MODEL_FILE, release.artifact),
            (MANIFEST_FILE, json.dumps(manifest, indent=2).encode()),
            (RELEASE_FILE, release.sealed),
        ):
            _write_synced(staging / name, data)
        _fsync_dir(staging)
        staging.rename(final)
        _fsync_dir(self.dir)

    def _cleanup(self) -> None:
        """Remove staging leftovers and versions that are neither active nor previous."""
        keep = {self.active_version(), self.previous_version()}
        for path in self.dir.iterdir():
            if path.is_dir() and (path.name.startswith(_STAGING) or path.name not in keep):
                shutil.rmtree(path, ignore_errors=True)

    def _pointer(self, name: str) -> str | None:
        try:
            text = (self.dir / name).read_text(encoding="ascii")[:_MAX_POINTER].strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return text if _valid_version(text) else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def self_test(release: Release, factory: Callable[[bytes], Model]) -> None:
    """Run the manifest's vectors in a fresh interpreter; raise `ReleaseRefused` on a miss."""
    manifest = release.manifest
    tolerance = manifest.self_test.tolerance
    try:
        model = factory(release.artifact)
        got = model.predict([v.inputs for v in manifest.self_test.vectors])
    except ModelError as exc:
        raise ReleaseRefused(f"self-test: {exc}", version=release.version) from exc
    for i, (vector, probability) in enumerate(zip(manifest.self_test.vectors, got, strict=True)):
        if abs(probability - vector.probability) > tolerance:
            raise ReleaseRefused(
                f"self-test vector {i}: the model answers {probability:.4f}, the manifest "
                f"expects {vector.probability:.4f} ± {tolerance}",
                version=release.version,
            )
        band = manifest.band_of(probability)
        if vector.band is not None and band is not None and band != vector.band:
            raise ReleaseRefused(
                f"self-test vector {i}: band {band}, the manifest expects {vector.band}",
                version=release.version,
            )


def load_default(
    factory: Callable[[bytes], Model] | None = None, package: Traversable | None = None
) -> LoadedModel | None:
    """The model bundled with the hub (hub/inference/default_model/), loaded; None if unusable."""
    choice = choose_default(factory, package)
    return choice.load() if choice is not None else None


def choose_default(
    factory: Callable[[bytes], Model] | None = None, package: Traversable | None = None
) -> ModelChoice | None:
    """The bundled model, checked without its runtime; None (logged) when missing or broken.

    The checks cost a file read and a SHA-256: the manifest parses, names the features this hub
    computes, and lists the artifact's SHA-256 and size (`model_int8.tflite` in the pipeline's
    manifest is the `model.tflite` shipped here).
    """
    try:
        package = package or resources.files(_DEFAULT_PACKAGE).joinpath(_DEFAULT_DIR)
        content = package.joinpath(MODEL_FILE).read_bytes()
        info = json.loads(package.joinpath(MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ModuleNotFoundError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.error("default_model_unusable", error=f"cannot read it: {exc}")
        return None
    if not isinstance(info, dict):
        log.error("default_model_unusable", error="its manifest is not a JSON object")
        return None
    try:
        check_artifact(info, content, variant="int8")
        version = parse_manifest(info).version
    except ModelError as exc:
        log.error("default_model_unusable", error=str(exc))
        return None
    load = functools.partial(_load_default, factory or litert_interpreter, info, content)
    return ModelChoice(version, "default", load)


def litert_interpreter(content: bytes) -> Model:
    """A LiteRT interpreter of `content`; imports numpy and LiteRT (once) when first called."""
    from hub.inference.runtime import LiteRTInterpreter  # noqa: PLC0415 - the runtime on demand

    return LiteRTInterpreter(content)


def _load_default(
    factory: Callable[[bytes], Model], info: Mapping[str, Any], content: bytes
) -> LoadedModel | None:
    try:
        return LoadedModel(
            str(info["version"]), factory(content), "default", triage=_triage(info, content)
        )
    except ModelError as exc:
        log.error("default_model_unusable", error=str(exc))
        return None


def _loaded(release: Release, factory: Callable[[bytes], Model]) -> LoadedModel:
    """Interpreter and triage model of a verified release; `ModelError` if unusable here."""
    manifest = release.manifest
    return LoadedModel(
        manifest.version,
        factory(release.artifact),
        "release",
        manifest,
        _triage(
            None
            if manifest.model_manifest is None
            else manifest.model_manifest | {"version": manifest.version},  # what results record
            release.artifact,
        ),
    )


def _triage(info: Mapping[str, Any] | None, content: bytes) -> TriageModel | None:
    if info is None:
        return None
    from hub.inference.runtime import from_manifest  # noqa: PLC0415 - the runtime on demand

    return from_manifest(info, content)


def _valid_version(text: str) -> bool:
    return re.fullmatch(VERSION_PATTERN, text) is not None


def _write_pointer(path: Path, version: str) -> None:
    """Replace a pointer file atomically: temp file, fsync, os.replace, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    _write_synced(tmp, f"{version}\n".encode("ascii"))
    tmp.replace(path)
    _fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
