"""`cloud-runs doctor` against the forge, a real Docker engine and a real Prefect API: one test per failure."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_runs.forge import Forge, ForgeApp
from cloud_runs.settings import load_settings
from cloud_runs.setup import doctor
from cloud_runs.setup.envfile import one_line

IMAGE = "debian:trixie-slim"  # present on every machine the project tests on (bootstrapped)
ENV_NAMES = (
    "GITHUB_APP_CLIENT_ID", "GITHUB_APP_ID", "GITHUB_APP_SLUG", "GITHUB_APP_PRIVATE_KEY", "GITHUB_API_URL",
    "CLOUD_RUNS_ENVIRONMENT", "SANDBOX_PROVIDER", "SANDBOX_IMAGE", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET",
    "CLOUD_RUNS_AGENT", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DOCKER_HOST",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment wins over .env: keep the developer's own settings out of these tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def setup_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Forge, ForgeApp, ForgeApp]]:
    with Forge(tmp_path_factory.mktemp("forge")) as forge:
        full = forge.create_app(slug="cloud-runs-full", name="Cloud Runs Full", owner="acme", permissions={
            "contents": "write", "pull_requests": "write", "issues": "write", "workflows": "write", "metadata": "read"})  # fmt: skip
        narrow = forge.create_app(slug="cloud-runs-narrow", name="Cloud Runs Narrow", owner="acme",
                                  permissions={"contents": "read"})  # fmt: skip
        forge.create_repo("acme/widgets", default_branch="trunk")
        forge.create_repo("acme/elsewhere")
        forge.install_app(full.id, owner="acme", repositories=["widgets"])
        forge.install_app(narrow.id, owner="acme", repositories=["widgets"])
        yield forge, full, narrow


def write_env(path: Path, forge: Forge, app: ForgeApp, **changes: str | None) -> Path:
    values = {
        "GITHUB_APP_CLIENT_ID": app.client_id,
        "GITHUB_APP_ID": str(app.id),
        "GITHUB_APP_SLUG": app.slug,
        "GITHUB_APP_PRIVATE_KEY": app.private_key_pem,
        "GITHUB_API_URL": forge.api_url,
        "SANDBOX_PROVIDER": "docker",
        "SANDBOX_IMAGE": IMAGE,
        "CLOUD_RUNS_AGENT": "claude-code",
        "ANTHROPIC_API_KEY": "sk-ant-doctor-test",
    }
    values.update(changes)
    path.write_text("".join(f"{k}={one_line(v)}\n" for k, v in values.items() if v is not None))
    return path


def run_doctor(env_file: Path, *extra: str) -> tuple[int, dict[str, doctor.Check]]:
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    out = io.StringIO()
    status = doctor.main(parser.parse_args(["--env-file", str(env_file), "--json", *extra]), out=out)
    checks = [doctor.Check(**c) for c in json.loads(out.getvalue())]
    return status, {c.name: c for c in checks}


@pytest.fixture(scope="module")
def saved_blocks(setup_world, prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    from blocks.registration import init_blocks

    forge, full, _ = setup_world
    env_file = write_env(tmp_path_factory.mktemp("blocks") / ".env", forge, full)
    init_blocks(load_settings(env_file), "doctor")
    return "doctor"


@pytest.mark.docker
def test_all_pass_on_a_correct_set_up(setup_world, saved_blocks: str, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    env_file = write_env(tmp_path / ".env", forge, full)
    status, checks = run_doctor(env_file, "--repository", "acme/widgets", "--block-name", saved_blocks)
    assert status == 0, checks
    assert {c.status for c in checks.values()} == {"pass"}, [c for c in checks.values() if c.status != "pass"]
    assert checks["private key"].detail.startswith("RSA 2048-bit, SHA256:")
    assert checks["default branch"].detail == "acme/widgets builds on trunk"
    assert checks["sandbox"].detail.startswith("Docker ") and IMAGE in checks["sandbox"].detail
    # The text report says the same, and never shows the key.
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    out = io.StringIO()
    assert doctor.main(parser.parse_args(["--env-file", str(env_file), "--block-name", saved_blocks]), out=out) == 0
    assert "PASS  GitHub App" in out.getvalue() and "0 failed" in out.getvalue()
    assert "PRIVATE KEY" not in out.getvalue() and full.private_key_pem.splitlines()[1] not in out.getvalue()


def test_missing_settings(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, GITHUB_APP_CLIENT_ID=None, GITHUB_APP_PRIVATE_KEY=None))
    assert status == 1
    assert checks["settings"].detail == "GITHUB_APP_CLIENT_ID, GITHUB_APP_PRIVATE_KEY not set"
    assert checks["settings"].hint == doctor.CREATE_APP_HINT
    assert checks["GitHub App"].status == "skip"


def test_private_key_that_does_not_parse(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    truncated = "\n".join(full.private_key_pem.splitlines()[:5])
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, GITHUB_APP_PRIVATE_KEY=truncated))
    assert status == 1
    assert checks["private key"].detail == "GITHUB_APP_PRIVATE_KEY is truncated (the -----END ... PRIVATE KEY----- line is missing)"
    assert "Generate a private key" in checks["private key"].hint
    assert truncated.splitlines()[1] not in json.dumps([c.__dict__ for c in checks.values()])


def test_key_of_another_app_is_named_as_such(setup_world, tmp_path: Path) -> None:
    forge, full, narrow = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, GITHUB_APP_PRIVATE_KEY=narrow.private_key_pem))
    assert status == 1
    assert checks["GitHub App"].detail == (
        "GitHub rejected the App's JWT (401): the key parses, so the key does not belong to this App or GITHUB_APP_ID is wrong"
    )
    assert f"{forge.url}/settings/apps/cloud-runs-full" in checks["GitHub App"].hint


def test_wrong_client_id_is_named_as_such(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, GITHUB_APP_ID=None, GITHUB_APP_CLIENT_ID="Iv23liNOTTHISONE"))
    assert status == 1
    assert checks["GitHub App"].detail.endswith("the key does not belong to this App or GITHUB_APP_CLIENT_ID is wrong")
    # With the App ID as issuer the JWT works, and the mismatch is named directly.
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, GITHUB_APP_CLIENT_ID="Iv23liNOTTHISONE"))
    assert checks["GitHub App"].detail == f"GITHUB_APP_CLIENT_ID is Iv23liNOTTHISONE but the key's App has client id {full.client_id}"


def test_permissions_that_do_not_cover_runs(setup_world, tmp_path: Path) -> None:
    forge, _, narrow = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, narrow))
    assert status == 1
    assert checks["permissions"].detail == "the App lacks contents: write, pull_requests: write, which every run needs"
    assert checks["permissions"].hint.startswith(f"add them at {forge.url}/organizations/acme/settings/apps/cloud-runs-narrow/permissions")
    assert checks["issues permission"].status == "warn" and checks["workflows permission"].status == "warn"
    assert "issue-driven runs" in checks["issues permission"].detail


def test_app_not_installed_names_the_install_url(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full), "--repository", "acme/elsewhere")
    assert status == 1
    assert checks["installation"].hint == f"install it on acme/elsewhere at {forge.url}/apps/cloud-runs-full/installations/new"


def test_installation_without_the_permissions_runs_need(setup_world, tmp_path: Path) -> None:
    forge, _, narrow = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, narrow), "--repository", "acme/widgets")
    assert status == 1 and checks["installation"].status == "fail"
    assert "contents" in checks["installation"].detail


@pytest.mark.docker
def test_missing_sandbox_image_names_the_build_command(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, SANDBOX_IMAGE="cloud-runs-nothing:404"))
    assert status == 1
    assert checks["sandbox"].detail == "the sandbox image cloud-runs-nothing:404 (SANDBOX_IMAGE) does not exist"
    assert "scripts/build-images" in checks["sandbox"].hint


def test_docker_engine_that_does_not_answer(setup_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forge, full, _ = setup_world
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # nothing listens on the discard port
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full))
    assert status == 1
    assert checks["sandbox"].detail.startswith("the Docker engine does not answer")
    assert checks["sandbox"].hint.startswith("start one with scripts/docker-engine start")


@pytest.mark.parametrize("provider", ["docker", "local"])
def test_production_refuses_docker_and_local(setup_world, tmp_path: Path, provider: str) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, SANDBOX_PROVIDER=provider, CLOUD_RUNS_ENVIRONMENT="production"))
    assert status == 1
    assert checks["sandbox"].detail == f"SANDBOX_PROVIDER={provider} is refused in production (CLOUD_RUNS_ENVIRONMENT=production)"
    assert checks["sandbox"].hint == "use the modal provider (SANDBOX_PROVIDER=modal) in production"


def test_modal_without_credentials(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, SANDBOX_PROVIDER="modal", MODAL_TOKEN_SECRET=None))
    assert status == 1
    assert checks["sandbox"].detail == "SANDBOX_PROVIDER=modal but MODAL_TOKEN_ID, MODAL_TOKEN_SECRET not set"
    assert "modal token new" in checks["sandbox"].hint


def test_modal_credentials_that_are_not_accepted(setup_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forge, full, _ = setup_world
    # Modal's real client, pointed at a closed loopback port: its authenticated call fails and is reported.
    monkeypatch.setenv("MODAL_SERVER_URL", "http://127.0.0.1:9")
    env_file = write_env(tmp_path / ".env", forge, full, SANDBOX_PROVIDER="modal", MODAL_TOKEN_ID="ak-doctor", MODAL_TOKEN_SECRET="as-doctor")
    status, checks = run_doctor(env_file, "--timeout", "3")
    assert status == 1
    assert checks["sandbox"].detail.startswith(("Modal refused the credentials or did not answer", "Modal did not answer"))
    assert "as-doctor" not in json.dumps([c.__dict__ for c in checks.values()])


def test_blocks_that_are_not_saved(setup_world, saved_blocks: str, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full), "--block-name", "never-saved")
    assert status == 1
    assert checks["Prefect API"].status == "pass" and checks["block types"].status == "pass"
    assert checks["blocks"].detail == "no GitHub App, docker sandbox block named 'never-saved'"
    assert checks["blocks"].hint == doctor.BLOCKS_HINT


def test_prefect_api_that_does_not_answer(setup_world, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    forge, full, _ = setup_world
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        status, checks = run_doctor(write_env(tmp_path / ".env", forge, full))
    assert status == 1
    assert checks["Prefect API"].detail.startswith("http://127.0.0.1:9/api did not answer")
    assert "prefect server start" in checks["Prefect API"].hint


def test_agent_model_key_missing(setup_world, tmp_path: Path) -> None:
    forge, full, _ = setup_world
    status, checks = run_doctor(write_env(tmp_path / ".env", forge, full, CLOUD_RUNS_AGENT="codex"))
    assert status == 1
    assert checks["agent"].detail == "CLOUD_RUNS_AGENT=codex needs OPENAI_API_KEY, which is not set"
    assert checks["agent"].hint == "set OPENAI_API_KEY in .env, then run `cloud-runs blocks init`"
