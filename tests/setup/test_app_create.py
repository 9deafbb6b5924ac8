"""`cloud-runs app create` end to end against the forge, a real Prefect API, and a real browser when installed."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from blocks.github_app import GitHubApp
from cloud_runs.errors import ConfigurationError
from cloud_runs.forge import Forge
from cloud_runs.github.app import GitHubAppAuth
from cloud_runs.settings import load_settings
from cloud_runs.setup.envfile import read_env_file
from tests.setup.browsers import Chromium, FormFollower, chromium_paths
from tests.setup.conftest import start_app_create

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def check_outcome(forge: Forge, env_file: Path, block_name: str, output: str, slug: str) -> None:
    values = read_env_file(env_file)
    # Other lines are kept as they were, in order; the new values are filled in or appended.
    lines = env_file.read_text().splitlines()
    assert lines[:2] == ["# my settings", "SANDBOX_PROVIDER=docker"] and "CLOUD_RUNS_AGENT=scripted" in lines
    assert values["GITHUB_APP_SLUG"] == slug and values["GITHUB_API_URL"] == forge.api_url
    assert "\\n" in values["GITHUB_APP_PRIVATE_KEY"] and "\n" not in values["GITHUB_APP_PRIVATE_KEY"]
    app = next(a for a in forge._apps.values() if a.slug == slug)
    assert values["GITHUB_APP_ID"] == str(app.id) and values["GITHUB_APP_CLIENT_ID"] == app.client_id
    assert (env_file.stat().st_mode & 0o077) == 0, "the .env file holds the private key: owner only"
    # What was written works: the settings read back authenticate as the App.
    settings = load_settings(env_file)
    auth = GitHubAppAuth.from_settings(settings, seconds_between_requests=None, seconds_between_writes=None)
    assert auth.app()["slug"] == slug
    block = GitHubApp.load(block_name)
    assert (block.client_id, block.slug, block.api_url) == (app.client_id, slug, forge.api_url)
    assert block.private_key.get_secret_value().strip() == app.private_key_pem.strip()
    # Secrets never reach the terminal.
    assert "PRIVATE KEY" not in output and app.private_key_pem.splitlines()[1] not in output
    assert f"Install it: {forge.url}/apps/{slug}/installations/new" in output


def test_http_client_follows_the_forms_and_a_second_run_changes_nothing(
    forge: Forge, env_file: Path, prefect_api: str
) -> None:
    running = start_app_create(
        ["--name", "Cloud Runs Forms", "--api-url", forge.api_url, "--env-file", str(env_file), "--org", "acme",
         "--issues", "--block-name", "forms"]
    )  # fmt: skip
    # A redirect that does not carry this run's state is refused and spends nothing.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{running.url}callback?code=abc&state=forged", timeout=10)
    assert refused.value.code == 400

    page = FormFollower().open(running.url)
    assert page.forms()[0].action.startswith(f"{forge.url}/organizations/acme/settings/apps/new?state=")
    page.submit()  # the local form posts the manifest to the forge
    assert page.url.startswith(forge.url) and "Create GitHub App for acme" in page.html
    page.submit()  # "Create GitHub App": the forge redirects back with the code
    assert page.url.startswith(f"{running.url}callback?code=") and page.status == 200
    assert "cloud-runs-forms" in page.html
    result = running.finish()
    assert result.env.written == ["GITHUB_APP_SLUG", "GITHUB_APP_CLIENT_ID", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_API_URL"]
    assert result.block == "saved"
    app = next(a for a in forge._apps.values() if a.slug == "cloud-runs-forms")
    assert app.owner == "acme"
    assert app.permissions == {"contents": "write", "pull_requests": "write", "metadata": "read", "issues": "write"}
    assert app.events == ["issues", "issue_comment"]
    check_outcome(forge, env_file, "forms", running.out.getvalue(), "cloud-runs-forms")

    before, apps_before = env_file.read_bytes(), len(forge._apps)
    block_before = GitHubApp.load("forms").model_dump()
    with pytest.raises(ConfigurationError) as again:
        start_app_create(["--name", "Cloud Runs Again", "--api-url", forge.api_url, "--env-file", str(env_file),
                          "--block-name", "forms"])  # fmt: skip
    assert "GITHUB_APP_CLIENT_ID, GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_APP_PRIVATE_KEY" in again.value.message
    assert "--force" in again.value.hint
    assert env_file.read_bytes() == before and len(forge._apps) == apps_before
    assert GitHubApp.load("forms").model_dump() == block_before


def test_force_replaces_the_app_settings_and_the_block(forge: Forge, env_file: Path, prefect_api: str) -> None:
    env_file.write_text(env_file.read_text().replace("GITHUB_APP_SLUG=", "GITHUB_APP_SLUG=old-app"))
    GitHubApp(client_id="Iv23old", slug="old-app", private_key="x", api_url=forge.api_url).save("forced", overwrite=True)
    running = start_app_create(["--name", "Cloud Runs Forced", "--api-url", forge.api_url, "--env-file", str(env_file),
                                "--block-name", "forced", "--force"])  # fmt: skip
    page = FormFollower().open(running.url)
    page.submit()
    assert "Create GitHub App for octocat" in page.html  # personal account without --org
    page.submit()
    result = running.finish()
    assert "GITHUB_APP_SLUG" in result.env.written and result.env.kept == [] and result.block == "saved"
    check_outcome(forge, env_file, "forced", running.out.getvalue(), "cloud-runs-forced")


def test_a_real_headless_browser_drives_the_flow(forge: Forge, env_file: Path, prefect_api: str) -> None:
    paths = chromium_paths()
    if paths is None:
        message = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    running = start_app_create(["--name", "Cloud Runs Browser", "--api-url", forge.api_url, "--env-file",
                                str(env_file), "--block-name", "browser", "--workflows"])  # fmt: skip
    browser = Chromium(*paths)
    try:
        browser.get(running.url)
        browser.click("#submit")
        browser.wait_for(lambda: browser.current_url.startswith(f"{forge.url}/settings/apps/new"))
        assert "Create GitHub App for octocat" in browser.page_source
        browser.click("#create-app")
        browser.wait_for(lambda: "cloud-runs-browser" in browser.page_source)
        assert browser.current_url.startswith(f"{running.url}callback?code=")
    finally:
        browser.close()
    running.finish()
    app = next(a for a in forge._apps.values() if a.slug == "cloud-runs-browser")
    assert app.permissions["workflows"] == "write" and "issues" not in app.permissions
    check_outcome(forge, env_file, "browser", running.out.getvalue(), "cloud-runs-browser")


def test_a_spent_code_is_reported_with_the_fix(forge: Forge, tmp_path: Path) -> None:
    from cloud_runs.setup.manifest import ManifestExchangeError, exchange_code

    with pytest.raises(ManifestExchangeError) as error:
        exchange_code(forge.api_url, "0" * 40)
    assert "used already or is older than an hour" in error.value.message
    assert "cloud-runs app create" in error.value.hint
