"""Pull requests and comments through real PyGithub against the forge: idempotent under failures."""

from __future__ import annotations

import time

import pytest

from cloud_runs.github.errors import GitHubPermissionError
from cloud_runs.github.publish import Publisher
from cloud_runs.github.pulls import (
    MAX_BODY_LENGTH,
    comment_on_issue,
    open_or_update_pull_request,
    render_pull_request_body,
)
from cloud_runs.redact import Redactor

from .conftest import git

PULLS_POST = r"/api/v3/repos/[^/]+/widgets/pulls$"


# -- Body ------------------------------------------------------------------------


def test_body_from_an_issue_closes_it_and_links_the_run():
    body = render_pull_request_body(
        summary="Fixed the crash.", diffstat=" a.py | 2 +-\n 1 file changed", issue=42,
        run_url="http://prefect.local/runs/flow-run/abc", agent="claude-code",
    )
    assert body.startswith("Fixed the crash.\n\nCloses #42\n\n")
    assert "```\n a.py | 2 +-\n 1 file changed\n```" in body
    assert "[run](http://prefect.local/runs/flow-run/abc)" in body and "claude-code" in body


def test_body_without_issue_or_run_and_with_secrets():
    body = render_pull_request_body(
        summary="Used sk-ant-SECRET123 to test.", diffstat="", issue=None, run_url=None, agent="codex",
        redact=Redactor(["sk-ant-SECRET123"]),
    )
    assert "Closes" not in body and "[run]" not in body and "<details>" not in body
    assert "sk-ant-SECRET123" not in body and "Used *** to test." in body
    assert render_pull_request_body(summary="", diffstat="", issue=None, run_url=None, agent="x").startswith(
        "_The agent left no summary._"
    )


def test_body_is_cut_to_githubs_limit_keeping_the_closing_keyword():
    body = render_pull_request_body(summary="x" * 100_000, diffstat="d", issue=9, run_url="http://r", agent="a")
    assert len(body) <= MAX_BODY_LENGTH
    assert "Closes #9" in body and "(truncated)" in body and body.endswith("</sub>")


# -- Against the forge -----------------------------------------------------------


def push_branch(world, branch: str, content: str) -> str:
    """Pushes a branch straight into the forge's bare repository (set-up, not the code under test)."""
    bare = world.forge.repo_path(world.repository)
    work = bare.parent / f"work-{branch.replace('/', '-')}"
    git(bare.parent, "clone", "-q", str(bare), str(work))
    (work / "change.txt").write_text(content)
    git(work, "add", "change.txt")
    git(work, "commit", "-qm", f"change {content}")
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def pr_world(world):
    world.head_sha = push_branch(world, "cloud-runs/fix", "one")
    world.client = world.auth().client(world.repository, {"pull_requests": "write", "issues": "write"})
    return world


def open_pr(world, **kw):
    args = dict(head="cloud-runs/fix", base="main", title="Fix it", body="First body", retry=world.retry())
    args.update(kw)
    return open_or_update_pull_request(world.client, world.repository, **args)


def test_opens_then_updates_the_same_pull_request(pr_world):
    first = open_pr(pr_world, labels=["cloud-runs"], draft=True)
    assert first.created and first.head_sha == pr_world.head_sha
    assert first.html_url.startswith(pr_world.forge.url) and first.html_url.endswith(f"/pull/{first.number}")
    second = open_pr(pr_world, title="Fix it (again)", body="Second body")
    assert not second.created and second.number == first.number
    pulls = pr_world.forge.pulls(pr_world.repository)
    assert len(pulls) == 1
    assert pulls[0]["title"] == "Fix it (again)" and pulls[0]["body"] == "Second body"
    assert pulls[0]["labels"] == ["cloud-runs"] and pulls[0]["draft"] is True


def test_502s_on_create_do_not_duplicate(pr_world):
    pr_world.forge.inject("POST", PULLS_POST, "502", count=2)
    result = open_pr(pr_world)
    assert result.created
    assert len(pr_world.forge.pulls(pr_world.repository)) == 1
    assert pr_world.waits == [1.0, 2.0]


def test_a_lost_answer_after_the_pull_request_was_created_does_not_duplicate(pr_world):
    # The forge creates the PR but answers after the client gave up: the retry must find it.
    forge, path = pr_world.forge, f"/api/v3/repos/{pr_world.repository}/pulls"
    slow_client = pr_world.auth(timeout=1).client(pr_world.repository, {"pull_requests": "write"})
    forge.inject("POST", PULLS_POST, "delay", count=1, seconds=2)

    def posts():
        return [r for r in forge.requests if r.method == "POST" and r.path == path]

    def backoff(seconds):
        # Wait (really) until the server has finished the request the client gave up on.
        pr_world.waits.append(seconds)
        deadline = time.monotonic() + 10
        while not posts() and time.monotonic() < deadline:
            time.sleep(0.05)

    result = open_or_update_pull_request(
        slow_client, pr_world.repository, head="cloud-runs/fix", base="main", title="Fix it", body="b",
        retry=pr_world.retry(sleep=backoff),
    )
    pulls = forge.pulls(pr_world.repository)
    assert len(pulls) == 1 and pulls[0]["number"] == result.number
    assert pr_world.waits == [1.0]
    # One POST, the delayed one (whose answer the client never read).
    assert [r.fault for r in posts()] == ["delay"]


def test_a_502_after_the_pull_request_was_created_does_not_duplicate(pr_world):
    # The forge creates the PR, then a "proxy" loses the answer: the retry must find it.
    forge = pr_world.forge
    forge.inject("POST", PULLS_POST, "502_after", count=1)
    result = open_pr(pr_world)

    pulls = forge.pulls(pr_world.repository)
    assert len(pulls) == 1 and pulls[0]["number"] == result.number
    posts = [r for r in forge.requests if r.method == "POST" and r.path.endswith(f"{pr_world.repository}/pulls")]
    assert [(r.fault, r.status) for r in posts] == [("502_after", 502)]
    assert pr_world.waits == [1.0]


def test_rate_limits_on_create_are_waited_out_as_asked(pr_world):
    pr_world.forge.inject("POST", PULLS_POST, "secondary_rate_limit", count=1, seconds=12)
    pr_world.forge.inject("POST", PULLS_POST, "primary_rate_limit", count=1, seconds=90)
    open_pr(pr_world)
    assert pr_world.waits[0] == 12.0
    assert 89 < pr_world.waits[1] <= 91
    assert len(pr_world.forge.pulls(pr_world.repository)) == 1


def test_a_second_publish_of_the_branch_updates_the_open_pull_request(world, tmp_path):
    """Two runs publish to the same branch through the Publisher: one PR, following the branch."""
    bare = world.forge.repo_path(world.repository)
    box = tmp_path / "box"
    git(tmp_path, "clone", "-q", str(bare), str(box))
    base = git(box, "rev-parse", "HEAD")
    results = []
    for run, text in enumerate(("first\n", "second\n"), start=1):
        (box / "notes.txt").write_text(text)
        git(box, "add", "notes.txt")
        git(box, "commit", "-qm", f"run {run}")
        git(box, "bundle", "create", "-q", str(tmp_path / "w.bundle"), f"{base}..HEAD")
        auth = world.auth()  # a fresh run: new auth, new tokens, new client
        pushed = Publisher(auth, world.repository).push_bundle(
            (tmp_path / "w.bundle").read_bytes(), base_sha=base, branch="cloud-runs/notes",
            expected_sha=results[-1].head_sha if results else None,
        )
        results.append(open_or_update_pull_request(
            auth.client(world.repository, {"pull_requests": "write"}), world.repository, head="cloud-runs/notes",
            base="main", title=f"Notes (run {run})", body=f"Run {run}", retry=world.retry(),
        ))
        assert results[-1].head_sha == pushed.sha
    first, second = results
    assert first.created and not second.created and first.number == second.number
    pulls = world.forge.pulls(world.repository)
    assert len(pulls) == 1 and pulls[0]["title"] == "Notes (run 2)" and pulls[0]["head_sha"] == second.head_sha


def test_reviewers_are_requested(pr_world):
    pr_world.forge.add_collaborator(pr_world.repository, "reviewer1")
    result = open_pr(pr_world, reviewers=["reviewer1"])
    assert pr_world.forge.pulls(pr_world.repository)[0]["requested_reviewers"] == ["reviewer1"]
    assert result.created


def test_missing_pull_requests_permission_is_named(pr_world):
    client = pr_world.auth().client(pr_world.repository, {"contents": "read"})
    with pytest.raises(GitHubPermissionError) as caught:
        open_or_update_pull_request(client, pr_world.repository, head="cloud-runs/fix", base="main",
                                    title="Fix it", body="b", retry=pr_world.retry())
    assert "pull_requests" in caught.value.message and "pull_requests" in caught.value.hint
    assert pr_world.waits == [] and pr_world.forge.pulls(pr_world.repository) == []


def test_comment_on_issue_once_even_when_retried(pr_world):
    forge = pr_world.forge
    number = forge.create_issue(pr_world.repository, "Crash on empty config", "steps...", user="alice")
    forge.inject("POST", rf"/{pr_world.repository}/issues/{number}/comments$", "502", count=1)
    url = comment_on_issue(pr_world.client, pr_world.repository, number, "Working on it: run 1", key="run-1",
                           retry=pr_world.retry())
    # A repeated call (a task retry) finds the marked comment instead of posting again.
    again = comment_on_issue(pr_world.client, pr_world.repository, number, "Working on it: run 1", key="run-1",
                             retry=pr_world.retry())
    comments = forge.issue_comments(pr_world.repository, number)
    assert len(comments) == 1 and url == again and f"#issuecomment-{comments[0]['id']}" in url
    assert comments[0]["body"].startswith("Working on it: run 1\n<!-- cloud-runs:run-1 -->")
    assert comments[0]["user"] == f"{pr_world.app.slug}[bot]"
    assert pr_world.waits == [1.0]


def test_comment_with_the_same_key_is_updated_in_place(pr_world):
    forge = pr_world.forge
    number = forge.create_issue(pr_world.repository, "Add dark mode", "", user="alice")
    comment_on_issue(pr_world.client, pr_world.repository, number, "Working on it", key="run-2", retry=pr_world.retry())
    comment_on_issue(pr_world.client, pr_world.repository, number, "Done: #7", key="run-2", retry=pr_world.retry())
    comments = forge.issue_comments(pr_world.repository, number)
    assert len(comments) == 1 and comments[0]["body"].startswith("Done: #7")
