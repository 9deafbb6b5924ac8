"""git smart HTTP with GitHub's access rules, driven by the real git CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.forge.support import World, clone, commit_file, git, git_env, server_branches


@pytest.fixture(scope="module")
def writer(world: World) -> str:
    return world.token(repositories=["widgets"], permissions={"contents": "write"})


def test_clone_and_push_with_environment_only_auth(world: World, writer: str, tmp_path: Path) -> None:
    work = clone(world.forge, "acme/widgets", tmp_path / "w", writer)
    assert (work / "src" / "app.py").read_text() == "print('hi')\n"
    assert writer not in (work / ".git" / "config").read_text()
    env = git_env(world.forge, writer)
    git("checkout", "-q", "-b", "topic", cwd=work, env=env)
    sha = commit_file(work, "notes.md", "hello\n")
    git("push", "-q", "origin", "topic", cwd=work, env=env)
    assert server_branches(world.forge, "acme/widgets")["topic"] == sha
    repo = world.github(writer).get_repo("acme/widgets")
    assert repo.get_branch("topic").commit.sha == sha


def test_large_push_is_sent_chunked_and_lands(world: World, writer: str, tmp_path: Path) -> None:
    work = clone(world.forge, "acme/widgets", tmp_path / "w", writer)
    env = git_env(world.forge, writer)
    git("checkout", "-q", "-b", "big", cwd=work, env=env)
    sha = commit_file(work, "blob.bin", os.urandom(3 * 1024 * 1024), "Big file")
    git("push", "-q", "origin", "big", cwd=work, env=env)
    assert server_branches(world.forge, "acme/widgets")["big"] == sha
    pushes = [r for r in world.forge.requests if r.path.endswith("/git-receive-pack") and r.method == "POST"]
    assert pushes[-1].chunked and pushes[-1].status == 200


def test_fetch_a_specific_commit(world: World, writer: str, tmp_path: Path) -> None:
    main_sha = server_branches(world.forge, "acme/widgets")["main"]
    work = tmp_path / "w"
    work.mkdir()
    env = git_env(world.forge, writer)
    git("init", "-q", cwd=work, env=env)
    git("fetch", "-q", "--depth=1", f"{world.forge.url}/acme/widgets.git", main_sha, cwd=work, env=env)
    assert git("rev-parse", "FETCH_HEAD", cwd=work, env=env).stdout.strip() == main_sha


def test_read_token_push_is_refused_and_changes_nothing(world: World, tmp_path: Path) -> None:
    reader = world.token(repositories=["widgets"], permissions={"contents": "read"})
    work = clone(world.forge, "acme/widgets", tmp_path / "w", reader)
    before = server_branches(world.forge, "acme/widgets")
    commit_file(work, "evil.txt", "x\n")
    env = git_env(world.forge, reader)
    result = git("push", "origin", "HEAD:main", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert "403" in result.stderr or "denied" in result.stderr
    result = git("push", "origin", "HEAD:refs/heads/sneaky", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert server_branches(world.forge, "acme/widgets") == before


def test_private_repository_needs_credentials(world: World, tmp_path: Path) -> None:
    result = git("clone", f"{world.forge.url}/acme/widgets.git", str(tmp_path / "w"), cwd=tmp_path,
                 env=git_env(world.forge, None), check=False)  # fmt: skip
    assert result.returncode != 0
    assert any(r.status == 401 and r.path.endswith("/info/refs") for r in world.forge.requests)
    public = clone(world.forge, "acme/public-site", tmp_path / "p", None)
    assert (public / "index.html").exists()


def test_token_scoped_to_another_repository_sees_nothing(world: World, tmp_path: Path) -> None:
    other = world.token(repositories=["gadgets"], permissions={"contents": "write"})
    result = git("clone", f"{world.forge.url}/acme/widgets.git", str(tmp_path / "w"), cwd=tmp_path,
                 env=git_env(world.forge, other), check=False)  # fmt: skip
    assert result.returncode != 0 and "not found" in result.stderr.lower()


def test_revoked_and_expired_tokens_are_refused(fresh_world: World, tmp_path: Path) -> None:
    forge = fresh_world.forge
    token = fresh_world.token(repositories=["widgets"], permissions={"contents": "read"})
    clone(forge, "acme/widgets", tmp_path / "ok", token)
    fresh_world.github(token).requester.requestJson("DELETE", "/installation/token")
    result = git("clone", f"{forge.url}/acme/widgets.git", str(tmp_path / "revoked"), cwd=tmp_path,
                 env=git_env(forge, token), check=False)  # fmt: skip
    assert result.returncode != 0
    token = fresh_world.token(repositories=["widgets"], permissions={"contents": "read"})
    forge.advance_clock(3601)
    result = git("clone", f"{forge.url}/acme/widgets.git", str(tmp_path / "expired"), cwd=tmp_path,
                 env=git_env(forge, token), check=False)  # fmt: skip
    assert result.returncode != 0
    assert [r.status for r in forge.requests if r.path.endswith("/info/refs")][-2:] == [401, 401]


def test_workflow_changes_need_the_workflows_permission(fresh_world: World, tmp_path: Path) -> None:
    forge = fresh_world.forge
    forge.create_repo("acme/ci", files={"README.md": "ci\n"})
    app = forge.create_app(
        slug="workflow-app", owner="acme", permissions={"contents": "write", "workflows": "write"}
    )
    installation = forge.install_app(app.id, owner="acme", repositories=["ci"])
    token = fresh_world.token(repositories=["widgets"], permissions={"contents": "write"})
    work = clone(forge, "acme/widgets", tmp_path / "w", token)
    env = git_env(forge, token)
    git("checkout", "-q", "-b", "ci", cwd=work, env=env)
    commit_file(work, ".github/workflows/ci.yml", "on: push\n", "Add CI")
    result = git("push", "origin", "ci", cwd=work, env=env, check=False)
    assert result.returncode != 0
    assert "refusing to allow a GitHub App to create or update workflow `.github/workflows/ci.yml`" in result.stderr
    assert "without `workflows` permission" in result.stderr
    assert "ci" not in server_branches(forge, "acme/widgets")

    # The same push with a workflows-capable token of another App goes through.
    from github import Auth, GithubIntegration

    from tests.forge.support import NO_THROTTLE

    gi = GithubIntegration(auth=Auth.AppAuth(app.client_id, app.private_key_pem), base_url=forge.api_url, **NO_THROTTLE)
    strong = gi.get_access_token(installation).token
    env = git_env(forge, strong)
    git("remote", "set-url", "origin", f"{forge.url}/acme/ci.git", cwd=work, env=env)
    git("push", "-q", "origin", "ci", cwd=work, env=env)
    assert "ci" in server_branches(forge, "acme/ci")


def test_bearer_authorization_is_accepted(world: World, writer: str, tmp_path: Path) -> None:
    env = git_env(world.forge, None)
    env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"http.{world.forge.url}/.extraheader",
               GIT_CONFIG_VALUE_0=f"Authorization: Bearer {writer}")  # fmt: skip
    git("clone", "--quiet", f"{world.forge.url}/acme/widgets", str(tmp_path / "w"), cwd=tmp_path, env=env)
    assert (tmp_path / "w" / "README.md").read_text() == "# widgets\n"
