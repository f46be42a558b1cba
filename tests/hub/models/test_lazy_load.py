"""The triage runtime (numpy, LiteRT) is loaded when triage first needs the model, not at start.

What must hold with the lazy load: a daemon that starts imports neither numpy nor a LiteRT
runtime; up/status names the model before it is loaded; a broken bundled model is reported at
start, still without numpy; the first load happens once however many threads ask; a model that
fails to load leaves triage on NEWS2 alone, logged and reported. The checks of `sys.modules` run
in a fresh interpreter: this test process has numpy loaded by other tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from release_kit import build_release

import hub.inference
from hub.models import holder as holder_module
from hub.models import store as store_module
from hub.models.holder import ModelHolder, ModelService
from hub.models.store import ModelStore, choose_default, litert_interpreter
from wire.keys import save_public_key

RUNTIME_MODULES = ("numpy", "ai_edge_litert", "tflite_runtime")
DEFAULT_DIR = Path(hub.inference.__file__).parent / "default_model"
SHIPPED_VERSION = json.loads((DEFAULT_DIR / "manifest.json").read_text())["version"]

_PRELUDE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import structlog

    events = []
    watchers = {}  # event name -> called when it is logged

    def keep(_logger, _name, event_dict):
        events.append(dict(event_dict))
        if (watcher := watchers.get(event_dict.get("event"))) is not None:
            watcher()
        return event_dict

    structlog.configure(
        processors=[keep, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )

    def runtime_modules():
        return sorted(m for m in ("numpy", "ai_edge_litert", "tflite_runtime") if m in sys.modules)
    """
)


def _isolated(script: str, *args: object) -> dict[str, Any]:
    """Run `script` (after _PRELUDE) in a fresh interpreter; return the JSON it prints last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hub_config(tmp_path: Path, cloud_key) -> Path:
    """A hub that serves phones (API, discovery on 127.0.0.1), no radio, no uplink."""
    keys = tmp_path / "keys"
    save_public_key(cloud_key, keys / "cloud-signing.pub.pem")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[identity]\nhub_id = "hub-lazy-1"\nkey_dir = "{keys}"\n'
        f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
        f'[buffer]\npath = "{tmp_path}/buffer.sqlite3"\n[models]\ndir = "{tmp_path}/models"\n'
        f'[api]\nhost = "127.0.0.1"\nport = {_free_port()}\n'
        '[discovery]\ninterfaces = ["127.0.0.1"]\n'
        "[ble]\nenabled = false\n[uplink]\nenabled = false\n",
        encoding="utf-8",
    )
    return config


_RUN_HUB_UNTIL_STARTED = """
    from hub.config import load_hub_settings
    from hub.daemon import DaemonOptions, run_hub

    async def main():
        stop, started = asyncio.Event(), asyncio.Event()
        watchers["hub_started"] = started.set
        settings = load_hub_settings(Path(sys.argv[1]))
        hub = asyncio.create_task(run_hub(settings, DaemonOptions(), stop))
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({hub, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            raise SystemExit(f"the hub did not start: {hub.exception() if hub.done() else 'slow'}")
        loaded = runtime_modules()
        stop.set()
        await asyncio.wait_for(hub, 30)
        in_use = [e.get("version") for e in events if e["event"] == "model_in_use"]
        print(json.dumps({"runtime": loaded, "in_use": in_use}))

    asyncio.run(main())
"""


@pytest.mark.parametrize("installed", [None, "1.1"], ids=["bundled-model", "installed-release"])
def test_the_daemon_starts_without_importing_the_model_runtime(tmp_path, cloud_key, installed):
    config = _hub_config(tmp_path, cloud_key)
    if installed:
        ModelStore(tmp_path / "models", cloud_key.public_key()).install(
            build_release(cloud_key, installed)
        )
    report = _isolated(_RUN_HUB_UNTIL_STARTED, config)
    assert report["runtime"] == []
    assert report["in_use"] == [installed or SHIPPED_VERSION]


def test_status_names_the_model_before_it_is_loaded_and_the_first_use_loads_it(tmp_path, cloud_key):
    config = _hub_config(tmp_path, cloud_key)
    report = _isolated(
        """
        from hub.config import load_hub_settings
        from hub.daemon import _build_models, _status_extra

        holder, service = _build_models(load_hub_settings(Path(sys.argv[1])))
        status = _status_extra(None, holder)
        before = (holder.loaded, runtime_modules())
        model = holder.triage_model()
        print(json.dumps({
            "status": status["model_version"],
            "before": before,
            "after": (holder.loaded, runtime_modules()),
            "model": model.version if model is not None else None,
            "loaded_events": [e["version"] for e in events if e["event"] == "model_loaded"],
        }))
        """,
        config,
    )
    assert report["status"] == SHIPPED_VERSION
    assert report["before"] == [False, []]
    assert report["after"][0] is True
    assert "numpy" in report["after"][1]
    assert report["model"] == SHIPPED_VERSION
    assert report["loaded_events"] == [SHIPPED_VERSION]


def _copy_default(tmp_path: Path) -> Path:
    target = tmp_path / "default_model"
    shutil.copytree(DEFAULT_DIR, target)
    return target


def _flip_a_model_byte(model: Path) -> None:
    data = bytearray((model / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / "model.tflite").write_bytes(bytes(data))


def _reorder_features(model: Path) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["features"]["names"].reverse()
    (model / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_a_model_byte, "does not match the SHA-256 and size"),
        (lambda m: (m / "manifest.json").write_text("{not json"), "cannot read it"),
        (lambda m: (m / "model.tflite").unlink(), "cannot read it"),
        (_reorder_features, "feature names are not the ones this hub computes"),
    ],
    ids=["artifact-corrupt", "manifest-not-json", "artifact-missing", "other-features"],
)
def test_a_broken_bundled_model_is_reported_at_start_without_numpy(
    tmp_path, cloud_key, damage, reason
):
    default = _copy_default(tmp_path)
    damage(default)
    key_file = tmp_path / "cloud.pub.pem"
    save_public_key(cloud_key, key_file)
    report = _isolated(
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from hub.models.holder import ModelService
        from hub.models.store import ModelStore, choose_default
        from wire.keys import load_public_key

        models, key, default = map(Path, sys.argv[1:])
        without_key = choose_default(package=default)  # the daemon without the cloud's key
        store = ModelStore(models, load_public_key(key, Ed25519PublicKey), default=default)
        service = ModelService(store)
        service.reload()  # the daemon with it
        print(json.dumps({
            "without_key": without_key is not None,
            "version": service.holder.version,
            "errors": [e.get("error") for e in events if e["event"] == "default_model_unusable"],
            "runtime": runtime_modules(),
        }))
        """,
        tmp_path / "models",
        key_file,
        default,
    )
    assert report["without_key"] is False
    assert report["version"] is None  # status says no model: NEWS2 alone
    assert len(report["errors"]) == 2
    assert all(reason in error for error in report["errors"])
    assert report["runtime"] == []


def test_the_bundled_model_passes_the_start_checks():
    choice = choose_default()
    assert choice is not None
    assert (choice.version, choice.source) == (SHIPPED_VERSION, "default")


def test_the_first_load_happens_once_under_concurrent_calls(tmp_path, cloud_key):
    threads = 8
    calling = threading.Barrier(threads + 1)
    release = threading.Event()
    factory_calls: list[int] = []

    def factory(content: bytes):
        factory_calls.append(threading.get_ident())
        assert release.wait(30), "the test never let the load finish"
        return litert_interpreter(content)

    store = ModelStore(tmp_path / "models", cloud_key.public_key(), model_factory=factory)
    holder = ModelHolder(store.choose_active())
    assert (holder.version, holder.loaded) == (SHIPPED_VERSION, False)
    got: list[object] = []

    def triage() -> None:
        calling.wait(30)
        got.append(holder.current())

    workers = [threading.Thread(target=triage) for _ in range(threads)]
    for worker in workers:
        worker.start()
    calling.wait(30)  # every worker is about to ask for the model
    release.set()
    for worker in workers:
        worker.join(30)
    assert len(factory_calls) == 1
    assert len(got) == threads
    assert got[0] is not None
    assert all(model is got[0] for model in got)
    assert holder.loaded
    assert holder.triage_model() is got[0].triage  # type: ignore[union-attr]
    assert len(factory_calls) == 1


def _unrunnable_default(tmp_path: Path) -> Path:
    """A bundled model that passes the start checks (its manifest lists this very artifact)
    but that LiteRT cannot load."""
    default = _copy_default(tmp_path)
    content = b"not a flatbuffer, yet listed with its checksum" * 8
    (default / "model.tflite").write_bytes(content)
    manifest = json.loads((default / "manifest.json").read_text())
    manifest["files"]["model_int8.tflite"] = {
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
    }
    (default / "manifest.json").write_text(json.dumps(manifest))
    return default


def test_a_model_that_fails_to_load_leaves_triage_on_news2_and_is_reported(tmp_path, monkeypatch):
    # Loggers cached by an earlier test's logging set-up (cache_logger_on_first_use) would miss
    # capture_logs: these two modules get fresh ones, bound on first use inside the capture.
    monkeypatch.setattr(holder_module, "log", structlog.get_logger(holder_module.__name__))
    monkeypatch.setattr(store_module, "log", structlog.get_logger(store_module.__name__))
    choice = choose_default(package=_unrunnable_default(tmp_path))
    assert choice is not None  # the start checks cannot see it: LiteRT refuses it later
    holder = ModelHolder(choice)
    changes: list[str | None] = []
    holder.on_change = lambda: changes.append(holder.version)
    assert holder.version == SHIPPED_VERSION
    with structlog.testing.capture_logs() as logs:
        assert holder.triage_model() is None
        assert holder.triage_model() is None  # not tried again on every batch
    assert holder.version is None  # up/status: no model in use
    assert changes == [None]
    events = [e["event"] for e in logs]
    assert events == ["default_model_unusable", "model_load_failed"]
    assert "LiteRT cannot load the model" in logs[0]["error"]


def test_a_release_is_loaded_at_first_use_after_an_install(tmp_path, cloud_key):
    service = ModelService(ModelStore(tmp_path / "models", cloud_key.public_key()))
    service.reload()
    assert (service.holder.version, service.holder.loaded) == (SHIPPED_VERSION, False)
    service.install(build_release(cloud_key, "1.1", bias=0.25))  # self-tested: runtime loaded
    assert (service.holder.version, service.holder.loaded) == ("1.1", False)
    loaded = service.holder.current()
    assert loaded is not None
    assert (loaded.version, loaded.source) == ("1.1", "release")
    assert service.holder.loaded
