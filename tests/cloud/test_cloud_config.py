from __future__ import annotations

import os

import pytest

from cloud.config import load_cloud_settings
from cloud.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TECSA_CLOUD_"):
            monkeypatch.delenv(name)


def test_defaults_work_for_a_local_setup():
    settings = load_cloud_settings()
    assert settings.database.url.get_secret_value().startswith("postgresql://")
    assert settings.mqtt.share_group == "ingest"


def test_environment_and_secret_files(tmp_path, monkeypatch):
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://tecsa:Rk8-zq2@db.internal:5432/tecsa\n", encoding="utf-8")
    monkeypatch.setenv("TECSA_CLOUD_DATABASE__URL_FILE", str(secret))
    monkeypatch.setenv("TECSA_CLOUD_S3__BUCKET", "archive-prod")
    settings = load_cloud_settings()
    assert (
        settings.database.url.get_secret_value()
        == "postgresql://tecsa:Rk8-zq2@db.internal:5432/tecsa"
    )
    assert settings.s3.bucket == "archive-prod"
    assert "Rk8-zq2" not in settings.model_dump_json()


def test_both_value_and_file_is_an_error(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("x1", encoding="utf-8")
    monkeypatch.setenv("TECSA_CLOUD_MQTT__PASSWORD", "x2")
    monkeypatch.setenv("TECSA_CLOUD_MQTT__PASSWORD_FILE", str(secret))
    with pytest.raises(ConfigError, match="set only one"):
        load_cloud_settings()


def test_missing_secret_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TECSA_CLOUD_S3__SECRET_ACCESS_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="TECSA_CLOUD_S3__SECRET_ACCESS_KEY_FILE"):
        load_cloud_settings()


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("TECSA_CLOUD_DATABASE__URL", "postgresql://tecsa:changeme@db/tecsa", "DATABASE__URL"),
        ("TECSA_CLOUD_S3__SECRET_ACCESS_KEY", "CHANGE_ME", "S3__SECRET_ACCESS_KEY"),
        ("TECSA_CLOUD_MQTT__PASSWORD", "<password>", "MQTT__PASSWORD"),
        ("TECSA_CLOUD_S3__ACCESS_KEY_ID", "placeholder", "S3__ACCESS_KEY_ID"),
    ],
)
def test_placeholder_secrets_refuse_to_start(monkeypatch, name, value, named):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{named}.*placeholder"):
        load_cloud_settings()


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("TECSA_CLOUD_API__PORT", "99999")
    with pytest.raises(ConfigError, match="TECSA_CLOUD_API__PORT"):
        load_cloud_settings()
