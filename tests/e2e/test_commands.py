"""The installed console scripts, run as a user would run them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _run(*args, env=None, check=False):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TECSA_HUB_", "TECSA_CLOUD_"))}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        check=check,
        timeout=120,
    )


def test_hub_help_lists_the_command_groups():
    result = _run("tecsa-hub", "--help")
    assert result.returncode == 0, result.stderr
    assert "Tecsa Hub" in result.stdout
    for group in ("config", "keys", "ble", "buffer", "devices"):
        assert group in result.stdout


def test_cloud_help_lists_the_command_groups():
    result = _run("tecsa-cloud", "--help")
    assert result.returncode == 0, result.stderr
    assert "TecsaS3 cloud" in result.stdout
    assert "config" in result.stdout


def test_hub_config_check_reports_what_is_missing():
    result = _run("tecsa-hub", "config", "check")
    assert result.returncode == 2
    assert "identity.hub_id: is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_hub_keys_init_creates_private_keys_0600_and_never_replaces(tmp_path):
    env = {"TECSA_HUB_IDENTITY__HUB_ID": "hub-t1", "TECSA_HUB_IDENTITY__KEY_DIR": str(tmp_path)}
    first = _run("tecsa-hub", "keys", "init", env=env)
    assert first.returncode == 0, first.stderr
    identity = tmp_path / "identity.ed25519.pem"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    before = identity.read_bytes()
    second = _run("tecsa-hub", "keys", "init", env=env)
    assert second.returncode == 0
    assert "kept existing" in second.stdout
    assert identity.read_bytes() == before
    shown = _run("tecsa-hub", "keys", "show", env=env)
    assert shown.stdout.split("identity ed25519:")[1].split()[0] in first.stdout


def test_cloud_keys_init(tmp_path):
    result = _run("tecsa-cloud", "keys", "init", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tecsa-ingest.pem").exists()
    assert (tmp_path / "tecsa-signing.pub.pem").exists()
    assert stat.S_IMODE((tmp_path / "tecsa-signing.pem").stat().st_mode) == 0o600


def test_cloud_refuses_placeholder_secret_with_its_name():
    result = _run("tecsa-cloud", "config", "check", env={"TECSA_CLOUD_MQTT__PASSWORD": "changeme"})
    assert result.returncode == 2
    assert "TECSA_CLOUD_MQTT__PASSWORD holds a placeholder" in result.stderr


def test_demo_seals_opens_and_refuses_a_forgery():
    result = _run("tecsa-demo", "wire", "--readings", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "captured=200 stored=200 forged_refused=True" in result.stdout
