"""Publishing: branch names (checked against the real `git check-ref-format`), and pushing bundles to the forge."""

from __future__ import annotations

import base64
import logging
import random
import re
import subprocess

import pytest

from cloud_runs.errors import InputError
from cloud_runs.github.app import GitIdentity
from cloud_runs.github.errors import BranchCollisionError, GitError, NothingToPublishError, WorkflowPermissionError
from cloud_runs.github.git import git_auth_env, run_git
from cloud_runs.github.publish import (
    Publisher,
    branch_name_problem,
    commit_identity_env,
    parse_bundle_header,
    render_branch_name,
    slugify,
)
from cloud_runs.github.pulls import open_or_update_pull_request, render_pull_request_body

from .conftest import DEFAULT_PERMISSIONS, git, make_world

HAND_PICKED = [
    "main", "cloud-runs/fix-bug", "a/b/c", "HEAD", "head", "-x", "x-", "@", "a@b", "a@{b", "@{-1}", "a..b", "a.lock",
    "a/b.lock/c", "x.lock.y", ".a", "a/.b", "a./b", "a.", "a/b.", "/a", "a/", "a//b", "a b", "a~1", "a^", "a:b",
    "a?", "a*", "a[1]", "a\\b", "a\tb", "a\x7fb", "é", "日本", "refs/heads/x", "a/-b", "a.b.c", "..", ".", "a/..",
    "...", "a/.lock", "lock", "a.lockx", "{slug}", "a{b}", "a!b", "a#b", "a%b", "a&b", "a'b", 'a"b', "a,b", "a;b",
    "a<b>", "a=b", "a|b", "a+b", "1", "-", "--", "a-/b", "a_/b",
]


def git_accepts(name: str, cwd) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", name], cwd=cwd, capture_output=True, timeout=30,
        env={"GIT_CEILING_DIRECTORIES": str(cwd), "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    return result.returncode == 0


def random_names(count: int) -> list[str]:
    rng = random.Random(20261204)  # fixed seed: the same names on every run
    alphabet = ["a", "b", "z", "0", "-", "_", ".", "/", "@", "{", "}", "~", " ", ":", "*", "lock", ".lock", "..", "é"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(count)]


def test_branch_rules_match_git_check_ref_format(tmp_path):
    names = HAND_PICKED + random_names(400)
    disagreements = [
        (name, branch_name_problem(name), git_accepts(name, tmp_path))
        for name in names
        if (branch_name_problem(name) is None) != git_accepts(name, tmp_path)
    ]
    assert disagreements == []
    # The sample exercises both outcomes plenty.
    verdicts = [branch_name_problem(n) is None for n in names]
    assert verdicts.count(True) > 50 and verdicts.count(False) > 50


def test_slugify():
    assert slugify("Fix: crash when config is EMPTY!") == "fix-crash-when-config-is-empty"
    assert slugify("Ünïcödé naïve café") == "unicode-naive-cafe"
    assert slugify("日本語") == ""
    long = slugify("word " * 40)
    assert len(long) <= 50 and not long.endswith("-") and long.startswith("word-word")
    assert len(slugify("x" * 80)) == 50


def test_render_branch_name_fills_placeholders():
    assert render_branch_name(title="Add dark mode", run_id="r-1", issue=None) == "cloud-runs/add-dark-mode"
    assert render_branch_name("agent/{issue}-{slug}", title="Add dark mode", run_id="r", issue=12) == "agent/12-add-dark-mode"
    assert render_branch_name("runs/{run_id}", title="x", run_id="0a1b", issue=None) == "runs/0a1b"
    # A title with no ASCII words falls back to the run id.
    assert render_branch_name(title="日本語", run_id="r-9", issue=None) == "cloud-runs/r-9"
    for title in ("Fix ../../etc", "a..b ~^:? [x]", "x.lock", "-rf", "@{-1}"):
        name = render_branch_name(title=title, run_id="r", issue=None)
        assert branch_name_problem(name) is None, name


@pytest.mark.parametrize(
    ("template", "issue", "words"),
    [
        ("runs/{user}", None, "unknown placeholder {user}"),
        ("runs/{issue}", None, "has no issue"),
        ("runs/{slug", None, "malformed"),
        ("runs/{slug}.lock", None, "ending with '.lock'"),
        ("runs//{slug}", None, "'//'"),
        ("-{slug}", None, "starts with '-'"),
        ("runs/{slug} now", None, "contains ' '"),
    ],
)
def test_render_branch_name_rejects_bad_templates(template, issue, words):
    with pytest.raises(InputError) as caught:
        render_branch_name(template, title="Fix it", run_id="r", issue=issue)
    assert words in caught.value.message and caught.value.hint


def test_commit_identity_env():
    identity = GitIdentity("cloud-runs[bot]", "7+cloud-runs[bot]@users.noreply.github.com")
    assert commit_identity_env(identity) == {
        "GIT_AUTHOR_NAME": "cloud-runs[bot]",
        "GIT_AUTHOR_EMAIL": "7+cloud-runs[bot]@users.noreply.github.com",
        "GIT_COMMITTER_NAME": "cloud-runs[bot]",
        "GIT_COMMITTER_EMAIL": "7+cloud-runs[bot]@users.noreply.github.com",
    }


def test_parse_bundle_header_of_a_real_bundle(tmp_path):
    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_AUTHOR_NAME": "t",
                                   "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"},
                              ).stdout.decode().strip()

    git("init", "-q", "-b", "main")
    (tmp_path / "a").write_text("1")
    git("add", "a")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    (tmp_path / "a").write_text("2")
    git("commit", "-qam", "work")
    head = git("rev-parse", "HEAD")
    git("bundle", "create", "-q", "work.bundle", f"{base}..HEAD")
    header = parse_bundle_header((tmp_path / "work.bundle").read_bytes())
    assert header.prerequisites == (base,)
    assert header.refs == {"HEAD": head}
    with pytest.raises(InputError):
        parse_bundle_header(b"PK\x03\x04 not a bundle")


# -- Publishing bundles to the forge ------------------------------------------------


class Sandbox:
    """A working clone standing in for the sandbox: the agent commits here, then bundles its work."""

    def __init__(self, world, path):
        self.path = path
        git(path.parent, "clone", "-q", str(world.forge.repo_path(world.repository)), str(path))
        self.base = git(path, "rev-parse", "HEAD")

    def commit(self, files: dict[str, str], message: str = "agent work") -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            git(self.path, "add", name)
        git(self.path, "commit", "-qm", message)
        return git(self.path, "rev-parse", "HEAD")

    def bundle(self, since: str | None = None) -> bytes:
        out = self.path.parent / f"{self.path.name}.bundle"
        git(self.path, "bundle", "create", "-q", str(out), f"{since or self.base}..HEAD")
        return out.read_bytes()


def remote_branch(world, branch) -> str:
    """The forge's branch tip, or "" when the branch does not exist."""
    listing = git(world.forge.repo_path(world.repository), "for-each-ref", "--format=%(objectname)",
                  f"refs/heads/{branch}")
    return listing.strip()


def test_push_creates_the_branch_and_reports_the_diff(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    head = box.commit({"src/app.py": "print('hello')\n", "docs/new.md": "# New\nline\n"})
    result = Publisher(world.auth(), world.repository).push_bundle(box.bundle(), base_sha=box.base,
                                                                   branch="cloud-runs/greeting")
    assert (result.sha, result.created, result.updated) == (head, True, False)
    assert remote_branch(world, "cloud-runs/greeting") == head
    assert sorted(result.files_changed) == ["docs/new.md", "src/app.py"]
    assert (result.insertions, result.deletions) == (3, 1)
    assert "2 files changed" in result.diffstat
    # Pushed with a write token scoped to the repository; the base was fetched with a read token.
    scopes = [t.permissions for t in world.forge.tokens if t.installation_id == world.installation_id]
    assert {"contents": "write", "metadata": "read"} in scopes and {"contents": "read", "metadata": "read"} in scopes


def test_pushing_the_same_sha_twice_is_a_no_op(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    box.commit({"a.txt": "a\n"})
    publisher = Publisher(world.auth(), world.repository)
    publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/a")
    again = publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/a")
    assert (again.created, again.updated) == (False, False)


def test_follow_up_push_fast_forwards_what_the_run_pushed(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    first = box.commit({"a.txt": "1\n"})
    publisher = Publisher(world.auth(), world.repository)
    publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/b")
    second = box.commit({"a.txt": "2\n"})
    result = publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/b", expected_sha=first)
    assert (result.sha, result.created, result.updated) == (second, False, True)
    assert remote_branch(world, "cloud-runs/b") == second


def test_never_overwrites_a_branch_it_did_not_push(world, tmp_path):
    someone = Sandbox(world, tmp_path / "someone")
    theirs = someone.commit({"theirs.txt": "human work\n"})
    git(someone.path, "push", "-q", "origin", "HEAD:refs/heads/feature")
    box = Sandbox(world, tmp_path / "box")
    box.commit({"ours.txt": "agent work\n"})
    publisher = Publisher(world.auth(), world.repository)
    for expected in (None, box.base):
        with pytest.raises(BranchCollisionError) as caught:
            publisher.push_bundle(box.bundle(), base_sha=box.base, branch="feature", expected_sha=expected)
        assert "did not push" in caught.value.message and caught.value.hint
    assert remote_branch(world, "feature") == theirs
    # The run owns the branch: force replaces it (with a lease on what it saw).
    result = publisher.push_bundle(box.bundle(), base_sha=box.base, branch="feature", force=True)
    assert result.updated and remote_branch(world, "feature") == result.sha


def test_a_rewritten_history_is_refused_without_force(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    first = box.commit({"a.txt": "1\n"})
    publisher = Publisher(world.auth(), world.repository)
    publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/c")
    git(box.path, "reset", "-q", "--hard", box.base)
    box.commit({"a.txt": "other\n"})
    with pytest.raises(BranchCollisionError) as caught:
        publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/c", expected_sha=first)
    assert "does not build on" in caught.value.message
    assert remote_branch(world, "cloud-runs/c") == first


def test_bad_bundles_are_refused_before_any_push(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    base = box.base
    middle = box.commit({"a.txt": "1\n"})
    box.commit({"a.txt": "2\n"})
    publisher = Publisher(world.auth(), world.repository)
    with pytest.raises(InputError) as caught:  # bundled on top of another commit than the base
        publisher.push_bundle(box.bundle(since=middle), base_sha=base, branch="cloud-runs/d")
    assert "not made on top of the base" in caught.value.message
    with pytest.raises(InputError):
        publisher.push_bundle(b"garbage", base_sha=base, branch="cloud-runs/d")
    with pytest.raises(InputError):
        publisher.push_bundle(box.bundle(), base_sha="abc", branch="cloud-runs/d")
    with pytest.raises(InputError):
        publisher.push_bundle(box.bundle(), base_sha=base, branch="bad..branch")
    # A full-history bundle of an unrelated history does not descend from the base.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    git(stranger, "init", "-q")
    (stranger / "x").write_text("x")
    git(stranger, "add", "x")
    git(stranger, "commit", "-qm", "unrelated")
    git(stranger, "bundle", "create", "-q", "all.bundle", "HEAD")
    with pytest.raises(InputError) as caught:
        publisher.push_bundle((stranger / "all.bundle").read_bytes(), base_sha=base, branch="cloud-runs/d")
    assert "does not descend" in caught.value.message
    assert remote_branch(world, "cloud-runs/d") == ""


def test_nothing_to_publish(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    git(box.path, "bundle", "create", "-q", str(tmp_path / "same.bundle"), "HEAD")
    with pytest.raises(NothingToPublishError):
        Publisher(world.auth(), world.repository).push_bundle(
            (tmp_path / "same.bundle").read_bytes(), base_sha=box.base, branch="cloud-runs/e"
        )


def test_workflow_changes_need_permission(forge, tmp_path):
    world = make_world(forge)
    box = Sandbox(world, tmp_path / "box")
    box.commit({".github/workflows/ci.yml": "on: push\n"})
    publisher = Publisher(world.auth(), world.repository)
    with pytest.raises(WorkflowPermissionError) as caught:  # the run does not allow workflow changes
        publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/ci")
    assert ".github/workflows/ci.yml" in caught.value.message and "Workflows" in caught.value.hint
    with pytest.raises(WorkflowPermissionError) as caught:  # allowed, but the App lacks the permission
        publisher.push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/ci", allow_workflows=True)
    assert "Workflows" in caught.value.message and "Workflows permission" in caught.value.hint
    assert remote_branch(world, "cloud-runs/ci") == ""

    allowed = make_world(forge, permissions={**DEFAULT_PERMISSIONS, "workflows": "write"})
    box2 = Sandbox(allowed, tmp_path / "box2")
    box2.commit({".github/workflows/ci.yml": "on: push\n"})
    result = Publisher(allowed.auth(), allowed.repository).push_bundle(
        box2.bundle(), base_sha=box2.base, branch="cloud-runs/ci", allow_workflows=True
    )
    assert result.created and result.touches_workflows
    assert {"contents": "write", "workflows": "write", "metadata": "read"} in [t.permissions for t in forge.tokens]


def test_a_workflow_push_refused_by_the_server_is_explained(world, tmp_path):
    """GitHub (and the forge) refuse workflow changes pushed without the permission; the error says so."""
    box = Sandbox(world, tmp_path / "box")
    box.commit({".github/workflows/ci.yml": "on: push\n"})
    env = git_auth_env(world.auth().token(world.repository, {"contents": "write"}).value, world.clone_url)
    with pytest.raises(GitError) as caught:
        run_git(["push", world.clone_url, "HEAD:refs/heads/wf"], cwd=box.path, env=env)
    assert "without `workflows` permission" in caught.value.stderr
    with pytest.raises(WorkflowPermissionError) as explained:
        Publisher(world.auth(), world.repository)._raise_refusal(caught.value, "wf", "")
    assert "workflows permission" in explained.value.message and "Workflows permission" in explained.value.hint
    assert remote_branch(world, "wf") == ""


def test_publish_and_pull_request_leave_no_token_in_logs_or_output(world, tmp_path, caplog, capfd):
    # PyGithub logs whole response bodies at DEBUG (token responses included) to its "github" logger,
    # which it sets to INFO with a stderr handler of its own: turn it up as a debugging user would.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")
    auth = world.auth()
    box = Sandbox(world, tmp_path / "box")
    box.commit({"fix.py": "x = 1\n"})
    world.forge.inject("POST", rf"/api/v3/repos/{world.repository}/pulls$", "502", count=1)
    result = Publisher(auth, world.repository).push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/f")
    client = auth.client(world.repository, {"pull_requests": "write"})
    body = render_pull_request_body(summary="Fixed.", diffstat=result.diffstat, issue=None, run_url=None, agent="t")
    pull = open_or_update_pull_request(client, world.repository, head="cloud-runs/f", base="main", title="Fix",
                                       body=body, retry=world.retry())
    tokens = [t.value for t in auth.issued_tokens()]
    jwt_now = auth.create_jwt()
    auth.revoke_all()
    out, err = capfd.readouterr()
    captured = caplog.text + out + err
    assert pull.created and len(tokens) >= 3
    assert "access_tokens" in caplog.text  # the token responses were logged (redacted)
    for token in tokens:
        assert token not in captured
        assert base64.b64encode(f"x-access-token:{token}".encode()).decode() not in captured
    assert jwt_now and not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", captured)  # no JWT either


def test_push_survives_a_502_from_the_git_server(world, tmp_path):
    box = Sandbox(world, tmp_path / "box")
    head = box.commit({"a.txt": "1\n"})
    world.forge.inject("POST", rf"/{world.repository}\.git/git-receive-pack$", "502", count=1)
    world.forge.inject("GET", rf"/{world.repository}\.git/info/refs$", "502", count=1)
    auth = world.auth()
    result = Publisher(auth, world.repository).push_bundle(box.bundle(), base_sha=box.base, branch="cloud-runs/g")
    assert result.created and remote_branch(world, "cloud-runs/g") == head
    assert world.waits == [1.0, 1.0]  # one backoff for the base fetch, one for the push
    faults = [r.fault for r in world.forge.requests if r.fault and world.repository in r.path]
    assert faults == ["502", "502"]
