"""An install killed half-way leaves the previous model active; triage never stops for a swap."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest
from release_kit import VECTORS, WEIGHTS, build_release
from tiny_tflite import expected

from hub.commands.handler import CommandRefused
from hub.models.holder import ModelService, model_release_handler
from hub.models.store import ModelStore, ReleaseRefused
from wire.commands import CommandKind, ModelReleaseData, new_command
from wire.keys import save_public_key

_INSTALL_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from hub.models.store import ModelStore
    from wire.keys import load_public_key

    directory, key, release, point = sys.argv[1:]

    def failpoint(name):
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    store = ModelStore(Path(directory), load_public_key(Path(key), Ed25519PublicKey),
                       failpoint=failpoint)
    store.install(Path(release).read_bytes())
    """
)


@pytest.mark.parametrize("point", ["placed", "previous_written"])
def test_install_killed_before_the_swap_keeps_the_previous_model(tmp_path, cloud_key, point):
    store = ModelStore(tmp_path / "models", cloud_key.public_key())
    store.install(build_release(cloud_key, "1.1", bias=0.25))
    key_file = tmp_path / "cloud.pub.pem"
    save_public_key(cloud_key, key_file)
    release = tmp_path / "1.2.release"
    release.write_bytes(build_release(cloud_key, "1.2", bias=-0.5))

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _INSTALL_AND_DIE,
            str(store.dir),
            str(key_file),
            str(release),
            point,
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    assert store.active_version() == "1.1"
    loaded = store.load_active()
    assert loaded is not None
    assert loaded.version == "1.1"
    assert loaded.model.predict([VECTORS[1]])[0] == pytest.approx(
        expected(WEIGHTS, 0.25, VECTORS[1]), 1e-5
    )
    assert all(m.valid for m in store.installed())
    # The directory is consistent: the same install now completes and cleans up.
    assert store.install(release.read_bytes()).previous == "1.1"
    assert [(m.version, m.state) for m in store.installed()] == [
        ("1.2", "active"),
        ("1.1", "previous"),
    ]


def test_install_killed_while_staging_leaves_no_trace_after_the_next_install(tmp_path, cloud_key):
    store = ModelStore(tmp_path / "models", cloud_key.public_key())
    store.install(build_release(cloud_key, "1.1"))
    leftover = store.dir / ".staging-crashed"
    leftover.mkdir()
    (leftover / "model.tflite").write_bytes(b"half")
    assert [m.version for m in store.installed()] == ["1.1"]
    store.install(build_release(cloud_key, "1.2"))
    assert not leftover.exists()


async def test_triage_continues_throughout_swaps(tmp_path, cloud_key):
    service = ModelService(ModelStore(tmp_path / "models", cloud_key.public_key()))
    service.install(build_release(cloud_key, "1.1", bias=0.25))
    answers = {
        "1.1": expected(WEIGHTS, 0.25, VECTORS[1]),
        "1.2": expected(WEIGHTS, -0.5, VECTORS[1]),
    }
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []
    scored = {v: threading.Event() for v in answers}

    async def scored_with(version: str) -> None:
        scored[version].clear()
        assert await asyncio.to_thread(scored[version].wait, 30), f"triage stopped on {version}"

    def triage() -> None:  # the daemon's loop: one holder read per batch
        while not stop.is_set():
            try:
                loaded = service.holder.current()
                assert loaded is not None
                got = loaded.model.predict([VECTORS[1]] * 4)
                assert got == pytest.approx([answers[loaded.version]] * 4, abs=1e-5)
                seen.append(loaded.version)
                scored[loaded.version].set()
            except BaseException as exc:  # noqa: BLE001 - any failure fails the test
                errors.append(exc)
                return

    worker = threading.Thread(target=triage)
    worker.start()
    try:
        new = base64.b64encode(build_release(cloud_key, "1.2", bias=-0.5)).decode()
        for _ in range(3):
            assert (await service.handle_model_release({"release": new})).version == "1.2"
            assert service.holder.version == "1.2"
            await scored_with("1.2")
            service.rollback()
            assert service.holder.version == "1.1"
            await scored_with("1.1")
            await asyncio.to_thread(service.install, base64.b64decode(new))
            await scored_with("1.2")
            service.rollback()
        bad = base64.b64encode(build_release(cloud_key, "1.3", claimed_bias=3.0)).decode()
        with pytest.raises(ReleaseRefused, match="self-test"):
            await service.handle_model_release({"release": bad})
        with pytest.raises(ReleaseRefused, match="base64"):
            await service.handle_model_release({"release": "%%%"})
        with pytest.raises(ReleaseRefused, match="command data"):
            await service.handle_model_release({"model": new})
        assert service.holder.version == "1.1"
        await scored_with("1.1")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert errors == []
    assert {"1.1", "1.2"} <= set(seen)


async def test_the_command_handler_refuses_for_good_and_activates(tmp_path, cloud_key):
    service = ModelService(ModelStore(tmp_path / "models", cloud_key.public_key()))
    apply = model_release_handler(service)
    now = datetime.now(UTC)

    def command(sealed: bytes):
        data = ModelReleaseData(release=base64.b64encode(sealed).decode())
        return new_command(
            CommandKind.MODEL_RELEASE,
            data,
            hub_id="hub-test-1",
            now=now,
            lifetime=timedelta(days=1),
            rand=bytes(10),
        )

    await apply(command(build_release(cloud_key, "1.1")))
    assert service.holder.version == "1.1"
    assert service.holder.refused is None
    with pytest.raises(CommandRefused, match="self-test vector 0"):
        await apply(command(build_release(cloud_key, "1.2", claimed_bias=2.0)))
    assert service.holder.version == "1.1"
    assert service.holder.refused == "1.2"  # reported in up/status: the cloud stops re-sending
    await apply(command(build_release(cloud_key, "1.3")))
    assert (service.holder.version, service.holder.refused) == ("1.3", None)
