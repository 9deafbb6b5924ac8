from __future__ import annotations

import pytest

from cloud_runs.errors import ConfigurationError
from cloud_runs.settings import load_settings, normalize_private_key

VARIABLES = (
    "GITHUB_APP_CLIENT_ID", "GITHUB_APP_ID", "GITHUB_APP_SLUG", "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_API_URL", "CLOUD_RUNS_ENVIRONMENT", "SANDBOX_PROVIDER", "ANTHROPIC_API_KEY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_without_env_file():
    settings = load_settings()
    assert settings.github_api_url == "https://api.github.com"
    assert settings.github_web_url == "https://github.com"
    assert settings.sandbox_provider == "docker"
    assert not settings.is_production


def test_env_file_is_read_and_private_key_newlines_are_restored(tmp_path, rsa_private_key_pem):
    one_line = rsa_private_key_pem.strip().replace("\n", "\\n")  # as it sits on one line in .env
    (tmp_path / ".env").write_text(
        "GITHUB_APP_CLIENT_ID=Iv1.abc\n"
        f"GITHUB_APP_PRIVATE_KEY={one_line}\\n\n"
        "GITHUB_API_URL=http://127.0.0.1:9/api/v3/\n"
    )
    settings = load_settings()
    assert settings.github_app_client_id == "Iv1.abc"
    assert settings.github_app_private_key.splitlines() == rsa_private_key_pem.strip().splitlines()
    assert settings.github_api_url == "http://127.0.0.1:9/api/v3"
    assert settings.github_web_url == "http://127.0.0.1:9"


def test_environment_overrides_env_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("GITHUB_APP_SLUG=from-file\n")
    monkeypatch.setenv("GITHUB_APP_SLUG", "from-env")
    assert load_settings().github_app_slug == "from-env"


def test_secrets_are_not_in_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    settings = load_settings()
    assert settings.anthropic_api_key == "sk-ant-very-secret"
    assert "sk-ant-very-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("SANDBOX_PROVIDER", "kubernetes", "SANDBOX_PROVIDER"), ("CLOUD_RUNS_ENVIRONMENT", "prod", "CLOUD_RUNS_ENVIRONMENT")],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_every_variable_is_documented_in_env_example():
    import dataclasses
    import pathlib

    example = (pathlib.Path(__file__).parents[1] / ".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    source = (pathlib.Path(__file__).parents[1] / "cloud_runs" / "settings.py").read_text()
    import re

    read = set(re.findall(r'get\("([A-Z_]+)"', source))
    assert read and read <= documented, f"undocumented: {read - documented}"
    assert len(dataclasses.fields(load_settings())) == len(read)


def test_normalize_private_key_handles_crlf_escapes():
    assert normalize_private_key("a\\r\\nb\\nc") == "a\nb\nc"
