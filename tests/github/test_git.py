"""The git transport: the auth environment and the clone command line.

The second half clones and pushes through the forge with them, proving the
token stays out of argv, .git/config, files and traces.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest

from cloud_runs.errors import InputError
from cloud_runs.github.errors import GitError
from cloud_runs.github.git import clone_argv, git_auth_env, redactor_for_env, run_git

from .conftest import git

TOKEN = "ghs_" + "A1b2C3d4" * 8 + ".x_y-z"


def test_auth_env_sends_the_token_as_a_header_for_that_host_only():
    env = git_auth_env(TOKEN, "http://127.0.0.1:8123/acme/widgets.git")
    count = int(env["GIT_CONFIG_COUNT"])
    config = [(env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"]) for i in range(count)]
    assert config == [
        ("http.http://127.0.0.1:8123/.extraheader", ""),
        (
            "http.http://127.0.0.1:8123/.extraheader",
            "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode(),
        ),
        ("credential.helper", ""),
    ]
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_ASKPASS"]
    # The raw token is in no variable: only its Basic-auth encoding is.
    assert not [k for k, v in env.items() if TOKEN in v or TOKEN in k]


@pytest.mark.parametrize(
    "url",
    ["https://someone@github.com/acme/widgets.git", "git@github.com:acme/widgets.git", "file:///tmp/x"],
)
def test_auth_env_refuses_urls_with_credentials_or_other_schemes(url):
    with pytest.raises(InputError) as caught:
        git_auth_env(TOKEN, url)
    assert "someone" not in str(caught.value)  # userinfo is never echoed: it may be a token


def test_clone_argv_has_no_token_and_disables_helpers():
    argv = clone_argv("https://github.com/acme/widgets.git", "/work/repo", branch="main", depth=1)
    assert argv == [
        "git", "-c", "credential.helper=", "clone", "--branch", "main", "--depth", "1", "--",
        "https://github.com/acme/widgets.git", "/work/repo",
    ]
    with pytest.raises(InputError):
        clone_argv("https://github.com/acme/widgets.git", "d", depth=0)
    with pytest.raises(InputError):
        clone_argv("https://github.com/acme/widgets.git", "d", branch="--upload-pack=evil")


def test_run_git_errors_redact_the_token(tmp_path):
    # Not token-shaped, so only the env-derived redaction (not the ghs_ pattern) can hide it.
    plain = "plain-credential-4711"
    env = git_auth_env(plain, "http://127.0.0.1:1/acme/widgets.git")
    run_git(["init", "-q"], cwd=tmp_path)
    with pytest.raises(GitError) as caught:
        # git echoes an unknown revision back on stderr; the token is known only from env.
        run_git(["show", plain], cwd=tmp_path, env=env)
    assert plain not in str(caught.value) and plain not in caught.value.stderr
    assert "***" in caught.value.stderr
    env = git_auth_env(TOKEN, "http://127.0.0.1:1/acme/widgets.git")
    redactor = redactor_for_env(env)
    header = env["GIT_CONFIG_VALUE_1"]
    assert redactor.redact(f"{header} / {TOKEN}") == "*** / ***"


def test_run_git_returns_stdout_and_enforces_timeouts(tmp_path):
    assert run_git(["--version"], cwd=tmp_path).startswith("git version")
    with pytest.raises(GitError) as caught:
        # An alias that sleeps stands in for a hung remote.
        run_git(["-c", "alias.hang=!sleep 5", "hang"], cwd=tmp_path, timeout=0.5)
    assert "did not finish within" in caught.value.message


# -- Against the forge: real clones and pushes ------------------------------------


class ProcessWatcher:
    """Records the command line of every process on the machine while active (by scanning /proc)."""

    def __init__(self) -> None:
        self.cmdlines: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        self.cmdlines.add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                            errors="replace"))
                    except OSError:
                        pass
            self._stop.wait(0.002)

    def __enter__(self) -> ProcessWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def recording_git(tmp_path: Path) -> tuple[str, Path]:
    """A `git` first on PATH that logs its argv, then runs the real git."""
    bindir, log = tmp_path / "bin", tmp_path / "argv.log"
    bindir.mkdir()
    wrapper = bindir / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec /usr/bin/git "$@"\n')
    wrapper.chmod(0o755)
    return f"{bindir}:{os.environ['PATH']}", log


def every_file_under(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def test_clone_keeps_the_token_out_of_argv_config_files_and_traces(world, tmp_path, monkeypatch):
    token = world.auth().token(world.repository, {"contents": "read"}).value
    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    home = tmp_path / "home"
    home.mkdir()
    path, argv_log = recording_git(tmp_path)
    monkeypatch.setenv("PATH", path)
    env = {
        **git_auth_env(token, world.clone_url),
        "HOME": str(home),
        "GIT_TRACE": str(tmp_path / "trace.log"),
        "GIT_TRACE_CURL": str(tmp_path / "curl.log"),
        "GIT_TRACE_PACKET": str(tmp_path / "packet.log"),
    }
    with ProcessWatcher() as watcher:
        run_git(clone_argv(world.clone_url, "repo")[1:], cwd=tmp_path, env=env, timeout=120)
    assert (tmp_path / "repo" / "src" / "app.py").read_text() == "print('hi')\n"
    # The clone really authenticated with the token, over HTTP to the forge.
    assert any(r.path.endswith("/git-upload-pack") and r.auth == "installation_token" for r in world.forge.requests)
    assert watcher.cmdlines and any("remote-http" in c for c in watcher.cmdlines)
    for cmdline in watcher.cmdlines | set(argv_log.read_text().splitlines()):
        assert token not in cmdline and header not in cmdline
    assert "clone" in argv_log.read_text()
    curl_trace = (tmp_path / "curl.log").read_text()
    assert "Authorization: Basic <redacted>" in curl_trace
    for where in (tmp_path / "repo", home, tmp_path):
        for file, content in every_file_under(where):
            assert token.encode() not in content and header.encode() not in content, file
    config = (tmp_path / "repo" / ".git" / "config").read_text()
    assert world.clone_url in config and "x-access-token" not in config and "extraheader" not in config


def test_a_read_token_cannot_push(world, tmp_path):
    auth = world.auth()
    read_env = git_auth_env(auth.token(world.repository, {"contents": "read"}).value, world.clone_url)
    run_git(clone_argv(world.clone_url, "repo")[1:], cwd=tmp_path, env=read_env)
    repo = tmp_path / "repo"
    (repo / "new.txt").write_text("x")
    git(repo, "add", "new.txt")
    git(repo, "commit", "-qm", "new")
    with pytest.raises(GitError) as caught:
        run_git(["push", "origin", "HEAD:refs/heads/agent-work"], cwd=repo, env=read_env)
    assert "403" in caught.value.stderr or "denied" in caught.value.stderr.lower()
    assert "agent-work" not in git(world.forge.repo_path(world.repository), "branch", "--list")
    write_env = git_auth_env(auth.token(world.repository, {"contents": "write"}).value, world.clone_url)
    run_git(["push", "origin", "HEAD:refs/heads/agent-work"], cwd=repo, env=write_env)
    assert "agent-work" in git(world.forge.repo_path(world.repository), "branch", "--list")


def test_revoked_or_foreign_tokens_cannot_clone_and_errors_stay_clean(world, tmp_path):
    auth = world.auth()
    token = auth.token(world.repository, {"contents": "read"})
    auth.revoke(token)
    with pytest.raises(GitError) as caught:
        run_git(clone_argv(world.clone_url, "revoked")[1:], cwd=tmp_path,
                env=git_auth_env(token.value, world.clone_url), timeout=60)
    assert token.value not in str(caught.value) and "rejected" in caught.value.hint
    other = auth.token(world.repository.replace("widgets", "gadgets"), {"contents": "read"})
    with pytest.raises(GitError):
        run_git(clone_argv(world.clone_url, "foreign")[1:], cwd=tmp_path,
                env=git_auth_env(other.value, world.clone_url), timeout=60)
    assert not (tmp_path / "foreign" / "README.md").exists()
