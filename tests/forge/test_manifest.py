"""The forge's App manifest flow: pages, validation, redirect, and the code conversion."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from github import Auth, Github, GithubIntegration

from cloud_runs.forge.manifest import slug_for
from tests.forge.support import NO_THROTTLE, World
from tests.setup.browsers import FormFollower

REDIRECT = "http://127.0.0.1:9/callback"  # never followed: the test reads the Location header


def manifest(**changes: object) -> str:
    body = {
        "name": "Manifest Made",
        "url": "https://example.com/app",
        "hook_attributes": {"url": "https://example.com/app", "active": False},
        "redirect_url": REDIRECT,
        "public": False,
        "default_permissions": {"contents": "write", "pull_requests": "write", "issues": "write"},
        "default_events": ["issues", "issue_comment"],
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def confirm(world: World, raw: str, path: str = "/settings/apps/new", state: str = "s1") -> FormFollower:
    from urllib.parse import urlencode

    page = FormFollower()
    return page.open(f"{world.forge.url}{path}?state={state}", data=urlencode({"manifest": raw}).encode(), method="POST")


def _Stop(url: str, html: str) -> FormFollower:  # noqa: N802
    """A follower that stops at the redirect to ``redirect_url`` (nothing listens there); status 0 there."""
    return FormFollower(url=url, html=html, stop_at="http://127.0.0.1:9/")


def create(world: World, raw: str, path: str = "/settings/apps/new", **overrides: str) -> str:
    """Confirms a manifest; returns the URL the forge redirected to."""
    page = confirm(world, raw, path)
    assert page.status == 200, page.html
    follower = _Stop(url=page.url, html=page.html)
    follower.submit(**overrides)
    return follower.url


def test_manifest_flow_creates_the_app_and_converts_the_code_once(fresh_world: World, github_openapi) -> None:
    forge = fresh_world.forge
    page = confirm(fresh_world, manifest())
    assert page.status == 200 and "Create GitHub App for octocat" in page.html
    follower = _Stop(url=page.url, html=page.html)
    follower.submit()
    query = parse_qs(urlsplit(follower.url).query)
    assert follower.url.startswith(REDIRECT) and query["state"] == ["s1"]
    code = query["code"][0]

    integration = Github(base_url=forge.api_url, retry=0, **NO_THROTTLE)
    status, headers, body = integration.requester.requestJson("POST", f"/app-manifests/{code}/conversions")
    assert status == 201, body
    data = json.loads(body)
    github_openapi.validate("POST", "/app-manifests/{code}/conversions", 201, data)
    assert data["slug"] == "manifest-made" and data["owner"]["login"] == "octocat"
    assert data["permissions"] == {"contents": "write", "pull_requests": "write", "issues": "write", "metadata": "read"}
    assert data["events"] == ["issues", "issue_comment"]
    assert data["webhook_secret"] and data["client_secret"]
    # The PEM is the App's key: a JWT signed with it reads GET /app.
    app = GithubIntegration(auth=Auth.AppAuth(data["client_id"], data["pem"]), base_url=forge.api_url, retry=0, **NO_THROTTLE)
    assert app.get_app().slug == "manifest-made"

    again, _, body = integration.requester.requestJson("POST", f"/app-manifests/{code}/conversions")
    assert again == 404
    github_openapi.validate("POST", "/app-manifests/{code}/conversions", 404, json.loads(body))


def test_codes_expire_after_an_hour_on_the_forge_clock(fresh_world: World) -> None:
    code = parse_qs(urlsplit(create(fresh_world, manifest(name="Slow Poke"))).query)["code"][0]
    fresh_world.forge.advance_clock(3601)
    integration = Github(base_url=fresh_world.forge.api_url, retry=0, **NO_THROTTLE)
    status, _, _ = integration.requester.requestJson("POST", f"/app-manifests/{code}/conversions")
    assert status == 404


def test_organization_page_and_edited_name(fresh_world: World) -> None:
    location = create(fresh_world, manifest(), "/organizations/acme/settings/apps/new", name="Acme Runner")
    assert "code=" in location
    app = next(a for a in fresh_world.forge._apps.values() if a.slug == "acme-runner")
    assert app.owner == "acme" and app.name == "Acme Runner"
    missing = confirm(fresh_world, manifest(), "/organizations/nobody-here/settings/apps/new")
    assert missing.status == 404


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        (manifest(url=None), "Url can&#x27;t be blank"),
        (manifest(hook_attributes={"active": False}), "Hook url can&#x27;t be blank"),
        (manifest(default_permissions={"contents": "write", "spaceships": "write"}), "spaceships is not a valid permission"),
        (manifest(default_permissions={"contents": "owner"}), "not a valid access level"),
        (manifest(default_events=["teleport"]), "teleport is not a valid event"),
        (manifest(default_permissions={"contents": "write"}, default_events=["issues"]), "issues needs the issues permission"),
        (manifest(colour="blue"), "Unknown manifest attribute: colour"),
    ],
)
def test_invalid_manifests_are_refused_before_anything_is_created(world: World, raw: str, message: str) -> None:
    before = len(world.forge._apps)
    page = confirm(world, raw)
    assert page.status == 422 and message in page.html
    assert len(world.forge._apps) == before


def test_taken_names_and_replayed_forms_are_refused(fresh_world: World) -> None:
    page = confirm(fresh_world, manifest(name="Cloud Runs Dev"))  # the world's App has this name
    follower = _Stop(url=page.url, html=page.html)
    follower.submit()
    assert follower.status == 422 and "already in use" in follower.html
    fresh = confirm(fresh_world, manifest(name="Once Only"))
    first = _Stop(url=fresh.url, html=fresh.html)
    first.submit()
    assert first.status == 0 and "code=" in first.url
    replay = _Stop(url=fresh.url, html=fresh.html)
    replay.submit()
    assert replay.status == 422 and "already submitted" in replay.html


def test_slug_follows_github_rules() -> None:
    assert slug_for("Cloud Runs (acme)") == "cloud-runs-acme"
    assert slug_for("  My__App!! 2 ") == "my-app-2"
