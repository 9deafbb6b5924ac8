"""Sandbox settings per provider, shared by the contract tests and the lifetime child process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cloud_runs.sandboxes import DockerSandboxSettings, LocalSandboxSettings, ModalSandboxSettings

SANDBOX_IMAGE = os.environ.get("SANDBOX_IMAGE", "cloud-runs-sandbox:latest")
MODAL_LIVE = bool(os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"))


def make_settings(provider: str, state_dir: Path, **overrides):
    """Settings of ``provider`` for tests; ``state_dir`` holds local/fake state."""
    common = {"lifetime_seconds": 300, "exec_timeout_seconds": 120, **overrides}
    if provider == "local":
        return LocalSandboxSettings(base_dir=str(state_dir / "local"), **common)
    if provider == "docker":
        return DockerSandboxSettings(image=SANDBOX_IMAGE, network_mode="none", cpu=1.0, memory_mb=1024, **common)
    if provider == "fake-modal":
        # user=None: the fake runs processes as the current host user (no `agent` there).
        return ModalSandboxSettings(
            token_id="ak-test", token_secret="as-test", image_source="registry", user=None,
            app_name="cloud-runs-test", **common,
        )
    if provider == "modal":
        return ModalSandboxSettings(app_name="cloud-runs-test", image_source="dockerfile", **common)
    raise ValueError(provider)


def install_fake_modal(state_dir: Path) -> None:
    """Makes ``import modal`` return the fake (for this process)."""
    from tests.fakes import fake_modal

    fake_modal.configure(state_dir / "fake-modal")
    sys.modules["modal"] = fake_modal


PROVIDERS = [
    "local",
    pytest.param("docker", marks=pytest.mark.docker),
    "fake-modal",
    pytest.param(
        "modal",
        marks=[
            pytest.mark.modal_live,
            pytest.mark.skipif(not MODAL_LIVE, reason="MODAL_TOKEN_ID/MODAL_TOKEN_SECRET are not set"),
        ],
    ),
]


@pytest.fixture
def fake_modal_installed(tmp_path, monkeypatch):
    from tests.fakes import fake_modal

    fake_modal.configure(tmp_path / "fake-modal")
    monkeypatch.setitem(sys.modules, "modal", fake_modal)
    return fake_modal


@pytest.fixture(params=PROVIDERS)
def provider(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env decides the environment
    monkeypatch.delenv("CLOUD_RUNS_ENVIRONMENT", raising=False)
    if request.param == "fake-modal":
        request.getfixturevalue("fake_modal_installed")
    return request.param


@pytest.fixture
def settings(provider, tmp_path):
    return make_settings(provider, tmp_path)


@pytest.fixture
def sandbox(settings, request):
    box = settings.create(run_id=f"test-{request.node.name[:30].replace('[', '-').replace(']', '')}")
    yield box
    box.destroy()
