"""The provisioning role, run for real on this machine (connection=local, a temporary root)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(PLAYBOOK is None, reason="ansible-core is in the dev extra")


def _play(tmp_path, *extra):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"[hubs]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n",
        encoding="utf-8",
    )
    env = os.environ | {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}
    return subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            str(inventory),
            str(ANSIBLE / "hub.yml"),
            "-e",
            "ansible_become=false",
            "-e",
            f"tecsa_hub_root={tmp_path}/root",
            "-e",
            f"tecsa_hub_venv={sys.prefix}",
            "-e",
            json.dumps(
                {
                    "tecsa_hub_install": False,
                    "tecsa_hub_manage_user": False,
                    "tecsa_hub_manage_systemd": False,
                }
            ),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_playbook_syntax():
    result = subprocess.run(
        [str(PLAYBOOK), "--syntax-check", "-i", "localhost,", str(ANSIBLE / "hub.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_role_configures_a_hub_and_a_second_run_changes_nothing(tmp_path):
    first = _play(tmp_path, "-e", "tecsa_hub_id=hub-ansible-01")
    assert first.returncode == 0, first.stdout[-3000:]
    root = tmp_path / "root"
    config = (root / "etc/tecsa-hub/hub.toml").read_text(encoding="utf-8")
    assert 'hub_id = "hub-ansible-01"' in config
    identity = root / "var/lib/tecsa-hub/keys/identity.ed25519.pem"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert "identity ed25519:" in first.stdout
    key_before = identity.read_bytes()
    second = _play(tmp_path, "-e", "tecsa_hub_id=hub-ansible-01")
    assert second.returncode == 0, second.stdout[-3000:]
    assert "changed=0" in second.stdout
    assert identity.read_bytes() == key_before


def test_role_refuses_a_bad_hub_id(tmp_path):
    result = _play(tmp_path, "-e", "tecsa_hub_id=Hub/1")
    assert result.returncode != 0
    assert "tecsa_hub_id must be the hub id given at enrolment" in result.stdout
