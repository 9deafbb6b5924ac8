"""Blocks: saved from settings, loaded by name in any process, never printing secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from blocks import AgentCredentials, DockerSandboxBlock, GitHubApp, ModalCredentials, ModalSandboxBlock
from blocks.registration import init_blocks
from cloud_runs.errors import ConfigurationError
from cloud_runs.settings import load_settings


@pytest.fixture(scope="module")
def private_key_line(rsa_private_key_pem) -> str:
    return rsa_private_key_pem.strip().replace("\n", "\\n")  # as it sits on one line in .env


@pytest.fixture
def app_environment(monkeypatch, tmp_path, private_key_line):
    monkeypatch.chdir(tmp_path)
    for name, value in {"GITHUB_APP_CLIENT_ID": "Iv23.blockstest", "GITHUB_APP_SLUG": "cloud-runs-blocks",
                        "GITHUB_APP_PRIVATE_KEY": private_key_line, "GITHUB_API_URL": "https://ghe.example/api/v3",
                        "ANTHROPIC_API_KEY": "sk-ant-blocks-secret-1", "MODAL_TOKEN_ID": "ak-blocks",
                        "MODAL_TOKEN_SECRET": "as-blocks-secret-2", "SANDBOX_IMAGE": "example/sandbox:1"}.items():
        monkeypatch.setenv(name, value)


def test_blocks_init_saves_every_block_and_prints_no_secret(prefect_api, app_environment, private_key_line):
    lines = init_blocks(load_settings(), "from-env")

    printed = "\n".join(lines)
    for secret in ("sk-ant-blocks-secret-1", "as-blocks-secret-2", private_key_line[40:80]):
        assert secret not in printed
    app = GitHubApp.load("from-env")
    assert (app.client_id, app.slug, app.api_url) == ("Iv23.blockstest", "cloud-runs-blocks", "https://ghe.example/api/v3")
    assert app.private_key.get_secret_value().startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert AgentCredentials.load("from-env").secrets() == {"ANTHROPIC_API_KEY": "sk-ant-blocks-secret-1"}
    assert DockerSandboxBlock.load("from-env").image == "example/sandbox:1"
    assert ModalCredentials.load("from-env").token_secret.get_secret_value() == "as-blocks-secret-2"
    assert ModalSandboxBlock.load("from-env").app_name == "cloud-runs"


def test_blocks_init_is_idempotent(prefect_api, app_environment):
    import asyncio

    from prefect.client.orchestration import get_client

    async def count() -> int:
        async with get_client() as client:
            return len(await client.read_block_documents())

    init_blocks(load_settings(), "twice")
    first = asyncio.run(count())
    init_blocks(load_settings(), "twice")
    assert asyncio.run(count()) == first


def test_blocks_init_refuses_incomplete_settings_before_saving(prefect_api, app_environment, monkeypatch):
    monkeypatch.delenv("GITHUB_APP_SLUG")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", "")
    with pytest.raises(ConfigurationError, match="GITHUB_APP_SLUG, GITHUB_APP_PRIVATE_KEY not set"):
        init_blocks(load_settings(), "incomplete")
    with pytest.raises(ValueError, match="Unable to find block document"):
        GitHubApp.load("incomplete")


def test_blocks_load_in_a_process_that_never_imported_them(prefect_api, app_environment):
    """Workers and containers load blocks by slug: the prefect.collections entry point registers the classes."""
    init_blocks(load_settings(), "elsewhere")
    code = ("from prefect.blocks.core import Block\n"
            "app = Block.load('cloud-runs-github-app/elsewhere')\n"
            "sandbox = Block.load('cloud-runs-docker-sandbox/elsewhere')\n"
            "print(type(app).__name__, app.slug, type(sandbox).__name__, sandbox.image)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PREFECT_API_URL": prefect_api},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["GitHubApp", "cloud-runs-blocks", "DockerSandboxBlock", "example/sandbox:1"]


def test_modal_sandbox_block_takes_its_token_from_the_credentials_block(prefect_api, app_environment):
    init_blocks(load_settings(), "modal")
    block = ModalSandboxBlock.load("modal")

    settings = block.settings()
    assert settings.token_id.get_secret_value() == "ak-blocks"
    assert settings.token_secret.get_secret_value() == "as-blocks-secret-2"
    assert block.token_secret is None  # the sandbox block itself stores no secret
