from __future__ import annotations

import os

import pytest

from hub.config import HubSettings, load_hub_settings
from hub.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TECSA_HUB_"):
            monkeypatch.delenv(name)


def _write(tmp_path, text):
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_file_is_loaded_with_defaults(tmp_path):
    path = _write(tmp_path, '[identity]\nhub_id = "hub-ke-0042"\n[uplink]\nbatch_max_items = 200\n')
    settings = load_hub_settings(path)
    assert isinstance(settings, HubSettings)
    assert settings.identity.hub_id == "hub-ke-0042"
    assert settings.uplink.batch_max_items == 200
    assert settings.buffer.synchronous == "NORMAL"
    assert settings.discovery.interfaces == ("127.0.0.1",)


def test_environment_overrides_the_file_and_merges_sections(tmp_path, monkeypatch):
    path = _write(tmp_path, '[identity]\nhub_id = "hub-a"\n[uplink]\nbatch_max_items = 200\n')
    monkeypatch.setenv("TECSA_HUB_IDENTITY__HUB_ID", "hub-b")
    monkeypatch.setenv("TECSA_HUB_UPLINK__BROKER_URL", "mqtts://broker.example.org:8883")
    monkeypatch.setenv("TECSA_HUB_BUFFER__SYNCHRONOUS", "FULL")
    settings = load_hub_settings(path)
    assert settings.identity.hub_id == "hub-b"
    assert settings.uplink.broker_url == "mqtts://broker.example.org:8883"
    assert settings.uplink.batch_max_items == 200
    assert settings.buffer.synchronous == "FULL"


def test_missing_hub_id_names_the_toml_key_and_the_variable():
    with pytest.raises(ConfigError) as info:
        load_hub_settings(None)
    message = str(info.value)
    assert "identity.hub_id: is required" in message
    assert "TECSA_HUB_IDENTITY__HUB_ID" in message


@pytest.mark.parametrize("placeholder", ["CHANGE-ME", "hub-changeme", "<hub id>", "xxx", "TODO"])
def test_placeholder_hub_id_is_refused(tmp_path, placeholder):
    path = _write(tmp_path, f'[identity]\nhub_id = "{placeholder}"\n')
    with pytest.raises(ConfigError, match=r"identity\.hub_id"):
        load_hub_settings(path)


def test_placeholder_broker_password_is_refused_by_name(tmp_path):
    path = _write(tmp_path, '[identity]\nhub_id = "hub-1"\n[uplink]\npassword = "changeme"\n')
    with pytest.raises(ConfigError, match=r"uplink\.password holds a placeholder"):
        load_hub_settings(path)


def test_secret_is_hidden_when_dumped(tmp_path):
    path = _write(tmp_path, '[identity]\nhub_id = "hub-1"\n[uplink]\npassword = "s3cr3t-Pa55"\n')
    settings = load_hub_settings(path)
    assert settings.uplink.password is not None
    assert settings.uplink.password.get_secret_value() == "s3cr3t-Pa55"
    assert "s3cr3t" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[identity]\nhub_id = "hub-1"\n[uplink]\nbroker_url = "http://x"\n', "uplink.broker_url"),
        ('[identity]\nhub_id = "hub-1"\n[buffer]\nsynchronous = "OFF"\n', "buffer.synchronous"),
        ('[identity]\nhub_id = "hub-1"\n[surprise]\nx = 1\n', "surprise"),
        ('[identity]\nhub_id = "hub/1"\n', "invalid hub id"),
        (
            '[identity]\nhub_id = "hub-1"\n[ble]\ndevice_timezone = "Mars/Olympus"\n',
            "unknown time zone",
        ),
        ("[identity\n", "not valid TOML"),
    ],
)
def test_bad_values_are_reported_clearly(tmp_path, text, reason):
    with pytest.raises(ConfigError, match=reason):
        load_hub_settings(_write(tmp_path, text))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_hub_settings(tmp_path / "nope.toml")
