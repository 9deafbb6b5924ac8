"""The REST subset behaves like GitHub's for real PyGithub calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from github import GithubException, UnknownObjectException

from tests.forge.support import World, clone, commit_file, git, git_env


@pytest.fixture(scope="module")
def writer(world: World) -> str:
    return world.token(repositories=["widgets"])


@pytest.fixture(scope="module")
def feature_branch(world: World, writer: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Pushes branch ``feature`` with one commit to acme/widgets; returns its head."""
    work = clone(world.forge, "acme/widgets", tmp_path_factory.mktemp("clone") / "widgets", writer)
    env = git_env(world.forge, writer)
    git("checkout", "-q", "-b", "feature", cwd=work, env=env)
    sha = commit_file(work, "src/feature.py", "x = 1\ny = 2\n", "Add feature")
    git("push", "-q", "origin", "feature", cwd=work, env=env)
    return sha


def test_repository_and_branch_lookups(world: World, writer: str, feature_branch: str) -> None:
    repo = world.github(writer).get_repo("acme/widgets")
    assert (repo.default_branch, repo.private, repo.clone_url) == ("main", True, f"{world.forge.url}/acme/widgets.git")
    assert repo.html_url == f"{world.forge.url}/acme/widgets"
    assert repo.get_branch("feature").commit.sha == feature_branch
    assert repo.get_git_ref("heads/feature").object.sha == feature_branch
    assert {b.name for b in repo.get_branches()} == {"main", "feature"}
    commit = repo.get_commit(feature_branch)
    assert commit.commit.message == "Add feature" and commit.parents[0].sha == repo.get_branch("main").commit.sha
    with pytest.raises(UnknownObjectException):
        repo.get_branch("nope")
    with pytest.raises(UnknownObjectException):
        repo.get_git_ref("heads/nope")


def test_branch_names_with_slashes_are_found(world: World, writer: str, feature_branch: str, tmp_path: Path) -> None:
    work = clone(world.forge, "acme/widgets", tmp_path / "widgets", writer)
    env = git_env(world.forge, writer)
    git("push", "-q", "origin", f"{feature_branch}:refs/heads/cloud-runs/fix-it", cwd=work, env=env)
    repo = world.github(writer).get_repo("acme/widgets")
    assert repo.get_branch("cloud-runs/fix-it").commit.sha == feature_branch
    with pytest.raises(UnknownObjectException):
        repo.get_branch("cloud-runs/missing")


def test_pull_request_lifecycle(world: World, writer: str, feature_branch: str) -> None:
    forge = world.forge
    forge.add_collaborator("acme/widgets", "alice", permission="write")
    repo = world.github(writer).get_repo("acme/widgets")
    assert list(repo.get_pulls(head="acme:feature", state="open")) == []
    pr = repo.create_pull(title="Add feature", body="Body", head="feature", base="main", draft=True)
    assert (pr.head.ref, pr.head.sha, pr.base.ref, pr.draft, pr.state) == ("feature", feature_branch, "main", True, "open")
    assert (pr.commits, pr.additions, pr.changed_files) == (1, 2, 1)
    assert pr.user.login == "cloud-runs-dev[bot]" and pr.user.type == "Bot"
    assert pr.html_url == f"{forge.url}/acme/widgets/pull/{pr.number}"

    with pytest.raises(GithubException) as caught:
        repo.create_pull(title="Again", body="", head="acme:feature", base="main")
    assert caught.value.status == 422
    assert caught.value.data["errors"][0]["message"] == "A pull request already exists for acme:feature."
    with pytest.raises(GithubException) as caught:
        repo.create_pull(title="Missing", body="", head="no-such-branch", base="main")
    assert caught.value.status == 422 and caught.value.data["errors"][0]["field"] == "head"

    found = list(repo.get_pulls(head="acme:feature", state="open"))
    assert [p.number for p in found] == [pr.number]
    assert list(repo.get_pulls(head="acme:other", state="open")) == []

    pr.edit(title="Add the feature", body="New body")
    pr.create_review_request(reviewers=["alice"])
    pr.as_issue().add_to_labels("cloud-run", "needs-review")
    pr.as_issue().remove_from_labels("needs-review")
    pr.create_issue_comment("Run finished")
    again = repo.get_pull(pr.number)
    assert (again.title, again.body) == ("Add the feature", "New body")
    assert [u.login for u in again.requested_reviewers] == ["alice"]
    assert [label.name for label in again.labels] == ["cloud-run"]
    assert forge.pulls("acme/widgets")[-1]["requested_reviewers"] == ["alice"]
    assert [c["body"] for c in forge.issue_comments("acme/widgets", pr.number)] == ["Run finished"]

    with pytest.raises(GithubException) as caught:
        pr.create_review_request(reviewers=["mallory-not-a-collaborator"])
    assert caught.value.status == 422

    pr.edit(state="closed")
    assert repo.get_pull(pr.number).state == "closed"
    assert list(repo.get_pulls(head="acme:feature", state="open")) == []
    pr.edit(state="open")


def test_pull_head_follows_pushes(world: World, writer: str, feature_branch: str, tmp_path: Path) -> None:
    forge = world.forge
    repo = world.github(writer).get_repo("acme/widgets")
    [pr] = list(repo.get_pulls(head="acme:feature", state="open"))
    work = clone(forge, "acme/widgets", tmp_path / "w", writer)
    env = git_env(forge, writer)
    git("checkout", "-q", "feature", cwd=work, env=env)
    new_head = commit_file(work, "src/more.py", "z = 3\n", "More")
    git("push", "-q", "origin", "feature", cwd=work, env=env)
    assert repo.get_pull(pr.number).head.sha == new_head
    assert forge.pulls("acme/widgets")[-1]["head_sha"] == new_head


def test_issues_share_numbers_with_pulls_and_report_association(world: World, writer: str, feature_branch: str) -> None:
    forge = world.forge
    forge.add_collaborator("acme/widgets", "bob", permission="write")
    owner_issue = forge.create_issue("acme/widgets", "Owner bug", "b", user="acme", labels=["cloud-run"])
    collab_issue = forge.create_issue("acme/widgets", "Collaborator bug", "b", user="bob", labels=["cloud-run"])
    stranger_issue = forge.create_issue("acme/widgets", "Stranger bug", "b", user="eve", labels=["cloud-run", "x"])
    plain = forge.create_issue("acme/widgets", "No label", "b", user="eve")
    assert stranger_issue == collab_issue + 1 and plain == stranger_issue + 1
    token = world.token(repositories=["widgets"], permissions={"issues": "write"})
    repo = world.github(token).get_repo("acme/widgets")
    labelled = {i.number: i for i in repo.get_issues(labels=["cloud-run"], state="open")}
    assert set(labelled) >= {owner_issue, collab_issue, stranger_issue} and plain not in labelled
    assert labelled[owner_issue].raw_data["author_association"] == "OWNER"
    assert labelled[collab_issue].raw_data["author_association"] == "COLLABORATOR"
    assert labelled[stranger_issue].raw_data["author_association"] == "NONE"
    assert labelled[stranger_issue].user.login == "eve"
    issue = repo.get_issue(collab_issue)
    issue.create_comment("On it")
    issue.add_to_labels("in-progress")
    issue.remove_from_labels("cloud-run")
    assert [c.body for c in issue.get_comments()] == ["On it"]
    assert [label.name for label in repo.get_issue(collab_issue).labels] == ["in-progress"]
    with pytest.raises(GithubException) as caught:
        issue.remove_from_labels("never-added")
    assert caught.value.status == 404


def test_commenting_needs_issues_write(world: World) -> None:
    number = world.forge.create_issue("acme/widgets", "Read only", "b", user="eve")
    token = world.token(repositories=["widgets"], permissions={"issues": "read"})
    issue = world.github(token).get_repo("acme/widgets").get_issue(number)
    with pytest.raises(GithubException) as caught:
        issue.create_comment("nope")
    assert caught.value.status == 403
    assert world.forge.issue_comments("acme/widgets", number) == []


def test_users_and_collaborator_permission(world: World, writer: str) -> None:
    gh = world.github(writer)
    bot = gh.get_user("cloud-runs-dev[bot]")
    assert (bot.id, bot.type) == (world.app.bot_user_id, "Bot")
    with pytest.raises(UnknownObjectException):
        gh.get_user("nobody-here")
    world.forge.add_collaborator("acme/widgets", "carol", permission="read")
    repo = gh.get_repo("acme/widgets")
    assert repo.get_collaborator_permission("acme") == "admin"
    assert repo.get_collaborator_permission("carol") == "read"
    world.forge.create_user("dave")
    assert repo.get_collaborator_permission("dave") == "none"


def test_pagination_follows_link_headers(world: World) -> None:
    for n in range(7):
        world.forge.create_issue("acme/gadgets", f"Issue {n}", "", user="eve")
    token = world.token(repositories=["gadgets"])
    gh = world.github(token)
    gh.per_page = 3
    titles = [i.title for i in gh.get_repo("acme/gadgets").get_issues(state="all")]
    assert len(titles) == 7 and titles[0] == "Issue 6"
    pages = [r for r in world.forge.requests if r.path == "/api/v3/repos/acme/gadgets/issues"]
    assert len(pages) == 3


def test_web_pages_answer_html_urls(world: World) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{world.forge.url}/acme/widgets", timeout=10) as response:
        assert response.status == 200 and b"acme/widgets" in response.read()
