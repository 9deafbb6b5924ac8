"""GitHub App authentication against the forge: JWTs, installations, scoped tokens, refresh, revocation."""

from __future__ import annotations

import github
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cloud_runs.errors import ConfigurationError, InputError
from cloud_runs.github.app import GitHubAppAuth, validate_permissions
from cloud_runs.github.errors import AppNotInstalledError, GitHubPermissionError, GitHubUnavailableError
from cloud_runs.github.keys import load_private_key
from cloud_runs.settings import Settings

from .conftest import make_world


def public_pem(world) -> bytes:
    return load_private_key(world.app.private_key_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- JWT and settings (no server needed, but the forge's App gives a real key) --------


def test_jwt_claims(world):
    auth = world.auth(clock=lambda: 1_800_000_000.7)
    token = auth.create_jwt()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, public_pem(world), algorithms=["RS256"], options={"verify_exp": False,
                                                                                   "verify_iat": False})
    assert claims == {"iat": 1_800_000_000 - 60, "exp": 1_800_000_000 + 540, "iss": world.app.client_id}
    assert claims["exp"] - claims["iat"] <= 600
    with_app_id = world.auth(app_id=str(world.app.id), clock=lambda: 1_800_000_000.0)
    assert jwt.decode(with_app_id.create_jwt(), options={"verify_signature": False})["iss"] == str(world.app.id)


def test_from_settings_names_every_missing_variable():
    with pytest.raises(ConfigurationError) as caught:
        GitHubAppAuth.from_settings(Settings())
    assert "GITHUB_APP_CLIENT_ID" in caught.value.message and "GITHUB_APP_PRIVATE_KEY" in caught.value.message
    with pytest.raises(ConfigurationError) as caught:
        GitHubAppAuth.from_settings(Settings(github_app_client_id="Iv23x", github_app_private_key="not a key"))
    assert caught.value.message.startswith("GITHUB_APP_PRIVATE_KEY ")
    assert "not a key" not in str(caught.value)


def test_from_settings_builds_a_working_auth(world):
    settings = Settings(
        github_app_client_id=world.app.client_id,
        github_app_slug=world.app.slug,
        github_app_private_key=world.app.private_key_pem.replace("\n", "\\n"),
        github_api_url=world.forge.api_url,
    )
    auth = GitHubAppAuth.from_settings(settings, seconds_between_requests=None, seconds_between_writes=None)
    assert auth.web_url == world.forge.url
    assert auth.installation_id(world.repository) == world.installation_id
    assert world.app.private_key_pem not in repr(auth)


@pytest.mark.parametrize(
    "name", ["acme", "acme/widgets/extra", "https://github.com/acme/widgets", "acme/widgets.git", "-acme/w",
             "acme/w dgets", "", "acme/..", "a--b/x"],
)
def test_bad_repository_names_fail_before_any_request(world, name):
    auth = world.auth()
    before = len(world.forge.requests)
    with pytest.raises(InputError) as caught:
        auth.token(name, {"contents": "read"})
    assert "owner/name" in caught.value.hint or ".git" in caught.value.message
    assert len(world.forge.requests) == before


def test_bad_permissions_fail_before_any_request():
    with pytest.raises(InputError):
        validate_permissions({})
    with pytest.raises(InputError) as caught:
        validate_permissions({"contents": "rw"})
    assert "contents" in caught.value.message
    with pytest.raises(InputError):
        validate_permissions({"Contents!": "read"})


# -- Installations ---------------------------------------------------------------


def test_app_and_installation(world):
    auth = world.auth()
    assert auth.app()["slug"] == world.app.slug
    assert auth.installation_id(world.repository) == world.installation_id


def test_app_not_installed_names_the_repository_and_the_install_link(world):
    world.forge.create_repo(f"{world.repository.split('/')[0]}/private-thing")
    world.forge.create_repo("elsewhere/thing")
    auth = world.auth()
    for repository in (f"{world.repository.split('/')[0]}/private-thing", "elsewhere/thing", "elsewhere/missing"):
        with pytest.raises(AppNotInstalledError) as caught:
            auth.token(repository, {"contents": "read"})
        assert repository in caught.value.message
        assert f"{world.forge.url}/apps/{world.app.slug}/installations/new" in caught.value.hint


def test_public_github_install_link():
    auth = GitHubAppAuth(client_id="Iv23x", private_key=_KEY_PEM, slug="my-app")
    assert auth.install_url() == "https://github.com/apps/my-app/installations/new"


# -- Tokens ----------------------------------------------------------------------


def test_token_is_scoped_to_one_repository_and_the_asked_permissions(world):
    auth = world.auth()
    token = auth.token(world.repository, {"contents": "read"})
    record = world.forge.tokens[-1]
    assert record.repositories == ["widgets"]
    assert record.permissions == {"contents": "read", "metadata": "read"}
    assert token.repository == world.repository and token.expires_in(world.forge.now()) > 3500
    assert token.value not in repr(token)
    gh = github.Github(auth=github.Auth.Token(token.value), base_url=world.forge.api_url, retry=0,
                       seconds_between_requests=None, seconds_between_writes=None)
    assert gh.get_repo(world.repository).full_name == world.repository
    # The sibling repository in the same installation is out of this token's reach.
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo(world.repository.replace("widgets", "gadgets"))
    # Cached: the same scope gives the same token; another scope another token.
    assert auth.token(world.repository, {"contents": "read"}) is token
    assert auth.token(world.repository, {"contents": "write"}).value != token.value


def test_permission_the_app_lacks_is_named(world):
    auth = world.auth()
    with pytest.raises(GitHubPermissionError) as caught:
        auth.token(world.repository, {"workflows": "write"})
    assert "workflows: write" in caught.value.message and world.repository in caught.value.message
    assert "permissions" in caught.value.hint


def test_tokens_refresh_through_a_two_hour_run(world):
    auth = world.auth()
    client = auth.client(world.repository, {"pull_requests": "write"})
    repo_scope = {"pull_requests": "write", "metadata": "read"}
    seen = set()
    for minute in range(0, 125, 5):
        # A call every five minutes for two hours: each must carry a live token.
        assert client.get_repo(world.repository).get_pulls(state="open").totalCount == 0
        seen.add(auth.token(world.repository, {"pull_requests": "write"}).value)
        world.forge.advance_clock(300)
    minted = [t for t in world.forge.tokens if t.permissions == repo_scope and t.installation_id == world.installation_id]
    # Fresh tokens at 0, 55 and 110 minutes (each replaced with 5 minutes left).
    assert len(minted) == 3 == len(seen)
    starts = [round((t.created_at - minted[0].created_at) / 60) for t in minted]
    assert starts == [0, 55, 110]
    assert all(r.status < 400 for r in world.forge.requests[-10:])


def test_expired_and_revoked_tokens_are_rejected(world):
    auth = world.auth()
    token = auth.token(world.repository, {"contents": "read"})

    def use(value):
        gh = github.Github(auth=github.Auth.Token(value), base_url=world.forge.api_url, retry=0,
                           seconds_between_requests=None, seconds_between_writes=None)
        return gh.get_repo(world.repository).full_name

    assert use(token.value) == world.repository
    auth.revoke(token)
    with pytest.raises(github.BadCredentialsException):
        use(token.value)
    auth.revoke(token)  # idempotent: the second revocation meets a 401 and is done
    assert world.forge.tokens[-1].revoked
    # A new token after revocation, not the revoked one from the cache.
    fresh = auth.token(world.repository, {"contents": "read"})
    assert fresh.value != token.value and use(fresh.value) == world.repository
    world.forge.advance_clock(3601)
    with pytest.raises(github.BadCredentialsException):
        use(fresh.value)


def test_revoke_all(world):
    auth = world.auth()
    tokens = [auth.token(world.repository, {"contents": "read"}), auth.token(world.repository, {"issues": "write"})]
    auth.revoke_all()
    assert all(r.revoked for r in world.forge.tokens[-2:])
    assert {t.value for t in tokens}.isdisjoint({auth.token(world.repository, {"contents": "read"}).value})


def test_bot_identity(world):
    identity = world.auth().bot_identity()
    slug = world.app.slug
    assert identity.name == f"{slug}[bot]"
    assert identity.email == f"{world.app.bot_user_id}+{slug}[bot]@users.noreply.github.com"
    assert world.auth(slug=slug).bot_identity(world.repository) == identity


# -- Retries on the App's own calls -----------------------------------------------


def test_token_minting_survives_502s_and_rate_limits_with_the_asked_waits(world):
    forge = world.forge
    auth = world.auth()
    forge.inject("GET", r"/repos/[^/]+/widgets/installation$", "502", count=2)
    forge.inject("POST", r"/app/installations/\d+/access_tokens$", "secondary_rate_limit", count=1, seconds=7)
    forge.inject("POST", r"/app/installations/\d+/access_tokens$", "primary_rate_limit", count=1, seconds=30)
    auth.token(world.repository, {"contents": "read"})
    assert world.waits[:3] == [1.0, 2.0, 7.0]
    # Until x-ratelimit-reset (whole seconds, 30 ahead) plus one second.
    assert 29 < world.waits[3] <= 31
    assert len(world.waits) == 4


def test_persistent_failure_is_bounded(world):
    world.forge.inject("GET", r"/app$", "502", count=3)
    auth = world.auth(retry=world.retry(attempts=3))
    with pytest.raises(GitHubUnavailableError) as caught:
        auth.app()
    assert "after 3 attempts" in caught.value.message
    assert world.waits == [1.0, 2.0]


def test_wrong_key_is_reported_as_bad_credentials(forge):
    first, second = make_world(forge), make_world(forge)
    auth = first.auth(private_key=second.app.private_key_pem)
    from cloud_runs.github.errors import GitHubAuthenticationError

    with pytest.raises(GitHubAuthenticationError) as caught:
        auth.installation_id(first.repository)
    assert "GITHUB_APP_PRIVATE_KEY" in caught.value.hint


_KEY_PEM = None


@pytest.fixture(autouse=True, scope="module")
def _key_pem():
    from cryptography.hazmat.primitives.asymmetric import rsa

    global _KEY_PEM
    _KEY_PEM = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
