"""App JWTs and installation tokens are checked the way GitHub checks them."""

from __future__ import annotations

import json

import jwt
import pytest
from github import Auth, BadCredentialsException, GithubException, GithubIntegration, UnknownObjectException

from cloud_runs.forge.auth import generate_key_pair
from tests.forge.support import NO_THROTTLE, World


def _jwt(world: World, **claims: object) -> str:
    now = int(world.forge.now())
    payload = {"iat": now - 60, "exp": now + 300, "iss": world.app.client_id, **claims}
    return jwt.encode(payload, world.app.private_key_pem, algorithm="RS256")


def _raw(world: World, token: str, path: str = "/app") -> tuple[int, dict]:
    gh = world.github()
    status, _headers, body = gh.requester.requestJson("GET", path, headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(body) if body else {}


def test_app_jwt_accepts_client_id_and_app_id_as_issuer(world: World) -> None:
    assert world.app.private_key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert world.integration(world.app.client_id).get_app().slug == "cloud-runs-dev"
    app = world.integration(world.app.id).get_app()  # an int `iss`, as older clients send
    assert (app.id, app.client_id, app.name) == (world.app.id, world.app.client_id, "Cloud Runs Dev")
    assert app.permissions["contents"] == "write"


def test_jwt_signed_with_another_key_is_rejected(world: World) -> None:
    other_key, _ = generate_key_pair()
    with pytest.raises(GithubException) as caught:
        world.integration(private_key=other_key).get_app()
    assert caught.value.status == 401
    assert caught.value.data["message"] == "A JSON web token could not be decoded"


def test_jwt_with_unknown_issuer_is_rejected(world: World) -> None:
    with pytest.raises(GithubException) as caught:
        world.integration(issuer="Iv23liNOTANAPP").get_app()
    assert caught.value.status == 401


def test_jwt_lifetime_and_clock_rules(world: World) -> None:
    now = int(world.forge.now())
    assert _raw(world, _jwt(world))[0] == 200
    status, body = _raw(world, _jwt(world, iat=now - 700, exp=now - 10))
    assert status == 401 and "'exp'" in body["message"]
    status, body = _raw(world, _jwt(world, iat=now - 60, exp=now + 600))
    assert status == 401 and "too far in the future" in body["message"]
    status, body = _raw(world, _jwt(world, iat=now + 300, exp=now + 500))
    assert status == 401 and "'iat'" in body["message"]
    hs256 = jwt.encode({"iat": now - 60, "exp": now + 300, "iss": world.app.client_id}, "a-shared-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert _raw(world, hs256)[0] == 401


def test_jwt_expires_on_the_forge_clock(fresh_world: World) -> None:
    token = _jwt(fresh_world)
    assert _raw(fresh_world, token)[0] == 200
    fresh_world.forge.advance_clock(301)
    assert _raw(fresh_world, token)[0] == 401


def test_installation_lookup_and_404_when_not_installed(world: World) -> None:
    gi = world.integration()
    assert gi.get_repo_installation("acme", "widgets").id == world.installation_id
    world.forge.create_repo("umbrella/tools")
    with pytest.raises(UnknownObjectException):
        gi.get_repo_installation("umbrella", "tools")


def test_installation_token_endpoints_need_a_jwt(world: World) -> None:
    token = world.token()
    status, body = _raw(world, token, "/app")
    assert status == 401 and body["message"] == "A JSON web token could not be decoded"


def test_token_is_long_dotted_and_expires_one_hour_ahead(world: World) -> None:
    before = world.forge.now()
    token = world.integration().get_access_token(world.installation_id)
    assert token.token.startswith("ghs_") and "." in token.token and len(token.token) >= 500
    assert abs(token.expires_at.timestamp() - (before + 3600)) < 5
    record = world.forge.tokens[-1]
    assert record.repositories is None and record.permissions["contents"] == "write"
    assert token.token not in repr(record) and token.token not in repr(world.forge.tokens)


def test_token_expires_on_the_forge_clock(fresh_world: World) -> None:
    token = fresh_world.token(repositories=["widgets"], permissions={"contents": "read"})
    gh = fresh_world.github(token)
    assert gh.get_repo("acme/widgets").name == "widgets"
    fresh_world.forge.advance_clock(3601)
    with pytest.raises(BadCredentialsException) as caught:
        fresh_world.github(token).get_repo("acme/widgets")
    assert caught.value.data["message"] == "Bad credentials"


def test_token_repository_scope_is_enforced(world: World) -> None:
    token = world.token(repositories=["widgets"], permissions={"contents": "read", "metadata": "read"})
    gh = world.github(token)
    assert gh.get_repo("acme/widgets").full_name == "acme/widgets"
    with pytest.raises(UnknownObjectException):
        gh.get_repo("acme/gadgets")
    record = world.forge.tokens[-1]
    assert record.repositories == ["widgets"] and record.permissions == {"contents": "read", "metadata": "read"}


def test_token_request_outside_the_installation_is_422(world: World) -> None:
    world.forge.create_repo("umbrella/secret")
    gi = world.integration()
    for body, words in [
        ({"repositories": ["secret"]}, "not accessible to the parent installation"),
        ({"repositories": ["does-not-exist"]}, "not accessible to the parent installation"),
        ({"permissions": {"workflows": "write"}}, "not granted to this installation"),
        ({"permissions": {"contents": "admin"}}, "not granted to this installation"),
    ]:
        with pytest.raises(GithubException) as caught:
            gi.requester.requestJsonAndCheck(
                "POST", f"/app/installations/{world.installation_id}/access_tokens", input=body
            )
        assert caught.value.status == 422, body
        assert words in caught.value.data["message"]


def test_installation_with_selected_repositories_limits_tokens(fresh_world: World) -> None:
    forge = fresh_world.forge
    app = forge.create_app(slug="narrow-app", owner="acme", permissions={"contents": "read"})
    installation = forge.install_app(app.id, owner="acme", repositories=["gadgets"])
    gi = GithubIntegration(auth=Auth.AppAuth(app.id, app.private_key_pem), base_url=forge.api_url, **NO_THROTTLE)
    with pytest.raises(UnknownObjectException):
        gi.get_repo_installation("acme", "widgets")
    _, data = gi.requester.requestJsonAndCheck("POST", f"/app/installations/{installation}/access_tokens", input={})
    assert data["repository_selection"] == "selected"
    assert [r["full_name"] for r in data["repositories"]] == ["acme/gadgets"]
    assert data["permissions"] == {"contents": "read", "metadata": "read"}


def test_permission_scope_is_enforced(world: World) -> None:
    token = world.token(repositories=["widgets"], permissions={"pull_requests": "read", "contents": "read"})
    repo = world.github(token).get_repo("acme/widgets")
    assert list(repo.get_pulls(state="all")) is not None
    with pytest.raises(GithubException) as caught:
        repo.create_pull(title="t", body="b", head="main", base="main")
    assert caught.value.status == 403
    assert caught.value.data["message"] == "Resource not accessible by integration"
    number = world.forge.create_issue("acme/widgets", "Bug", "It breaks", user="alice")
    with pytest.raises(GithubException) as caught:
        world.github(token).get_repo("acme/widgets").get_issue(number)
    assert caught.value.status == 403


def test_revoked_token_gets_401_everywhere(world: World) -> None:
    token = world.token(repositories=["widgets"])
    gh = world.github(token)
    assert gh.get_repo("acme/widgets").name == "widgets"
    status, _, _ = gh.requester.requestJson("DELETE", "/installation/token")
    assert status == 204
    assert world.forge.tokens[-1].revoked
    with pytest.raises(BadCredentialsException):
        world.github(token).get_repo("acme/widgets")


def test_anonymous_access_follows_visibility(world: World) -> None:
    gh = world.github()
    assert gh.get_repo("acme/public-site").private is False
    with pytest.raises(UnknownObjectException):
        gh.get_repo("acme/widgets")
    status, _, body = gh.requester.requestJson("POST", "/repos/acme/public-site/issues/1/comments", input={"body": "x"})
    assert status in (401, 404)


def test_requests_record_credential_kinds_without_secrets(world: World) -> None:
    token = world.token(repositories=["widgets"])
    world.github(token).get_repo("acme/widgets")
    record = world.forge.requests[-1]
    assert (record.method, record.path, record.status, record.auth) == ("GET", "/api/v3/repos/acme/widgets", 200, "installation_token")
    assert record.token_id == world.forge.tokens[-1].id
    assert token not in repr(world.forge.requests)
