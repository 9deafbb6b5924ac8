"""Every response body the project relies on fits GitHub's published OpenAPI description.

Each call goes through PyGithub's requester to the forge; its JSON is validated
with jsonschema against the operation's response schema for the status code.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from github import Github

from tests.forge.openapi import OpenApi
from tests.forge.support import World, clone, commit_file, git, git_env

REPO = "/repos/{owner}/{repo}"


class Checker:
    """Calls the forge and validates each answer; remembers which operations were covered."""

    def __init__(self, spec: OpenApi) -> None:
        self.spec = spec
        self.covered: set[tuple[str, str, int]] = set()

    def __call__(
        self, gh: Github, method: str, template: str, path: str, status: int, body: Any = None
    ) -> Any:
        code, _headers, output = gh.requester.requestJson(method, path, input=body)
        data = json.loads(output) if output else None
        assert code == status, f"{method} {path}: expected {status}, got {code}: {output[:300]}"
        self.spec.validate(method, template, status, data)
        self.covered.add((method, template, status))
        return data


def test_response_shapes_match_github_openapi(github_openapi: OpenApi, world: World, tmp_path: Path) -> None:
    check = Checker(github_openapi)
    forge = world.forge
    jwt_client = world.integration()
    check(jwt_client, "GET", "/app", "/app", 200)
    check(jwt_client, "GET", f"{REPO}/installation", "/repos/acme/widgets/installation", 200)
    forge.create_repo("elsewhere/tool")
    check(jwt_client, "GET", f"{REPO}/installation", "/repos/elsewhere/tool/installation", 404)
    tokens = "/app/installations/{installation_id}/access_tokens"
    minted = check(jwt_client, "POST", tokens, f"/app/installations/{world.installation_id}/access_tokens", 201,
                   {"repositories": ["widgets"], "permissions": {"contents": "write", "pull_requests": "write",
                                                                 "issues": "write"}})  # fmt: skip
    check(jwt_client, "POST", tokens, f"/app/installations/{world.installation_id}/access_tokens", 201, {})
    check(jwt_client, "POST", tokens, f"/app/installations/{world.installation_id}/access_tokens", 422,
          {"repositories": ["tool"]})  # fmt: skip

    token = minted["token"]
    gh = world.github(token)
    work = clone(forge, "acme/widgets", tmp_path / "w", token)
    env = git_env(forge, token)
    git("checkout", "-q", "-b", "shapes", cwd=work, env=env)
    head = commit_file(work, "shapes.txt", "shapes\n", "Shapes")
    git("push", "-q", "origin", "shapes", cwd=work, env=env)

    check(gh, "GET", REPO, "/repos/acme/widgets", 200)
    check(gh, "GET", REPO, "/repos/acme/gadgets", 404)
    check(gh, "GET", f"{REPO}/branches", "/repos/acme/widgets/branches", 200)
    check(gh, "GET", f"{REPO}/branches/{{branch}}", "/repos/acme/widgets/branches/shapes", 200)
    check(gh, "GET", f"{REPO}/branches/{{branch}}", "/repos/acme/widgets/branches/missing", 404)
    check(gh, "GET", f"{REPO}/git/ref/{{ref}}", "/repos/acme/widgets/git/ref/heads/shapes", 200)
    check(gh, "GET", f"{REPO}/git/ref/{{ref}}", "/repos/acme/widgets/git/ref/heads/missing", 404)
    check(gh, "GET", f"{REPO}/git/matching-refs/{{ref}}", "/repos/acme/widgets/git/matching-refs/heads/", 200)
    check(gh, "GET", f"{REPO}/commits/{{ref}}", f"/repos/acme/widgets/commits/{head}", 200)

    pulls = f"{REPO}/pulls"
    pr = check(gh, "POST", pulls, "/repos/acme/widgets/pulls", 201,
               {"title": "Shapes", "head": "shapes", "base": "main", "body": "b", "draft": True})  # fmt: skip
    check(gh, "POST", pulls, "/repos/acme/widgets/pulls", 422, {"title": "Again", "head": "acme:shapes", "base": "main"})
    check(gh, "GET", pulls, "/repos/acme/widgets/pulls?head=acme:shapes&state=open", 200)
    number = pr["number"]
    one = f"{pulls}/{{pull_number}}"
    check(gh, "GET", one, f"/repos/acme/widgets/pulls/{number}", 200)
    check(gh, "GET", one, "/repos/acme/widgets/pulls/9999", 404)
    check(gh, "PATCH", one, f"/repos/acme/widgets/pulls/{number}", 200, {"title": "Shapes!", "body": "new"})
    forge.add_collaborator("acme/widgets", "alice", "write")
    check(gh, "POST", f"{one}/requested_reviewers", f"/repos/acme/widgets/pulls/{number}/requested_reviewers", 201,
          {"reviewers": ["alice"]})  # fmt: skip
    reader = world.github(world.token(repositories=["widgets"], permissions={"pull_requests": "read"}))
    check(reader, "POST", pulls, "/repos/acme/widgets/pulls", 403, {"title": "x", "head": "shapes", "base": "main"})

    issue_number = forge.create_issue("acme/widgets", "Shape bug", "body", user="alice", labels=["cloud-run"])
    issue = f"{REPO}/issues/{{issue_number}}"
    check(gh, "GET", f"{REPO}/issues", "/repos/acme/widgets/issues?labels=cloud-run&state=open", 200)
    check(gh, "GET", issue, f"/repos/acme/widgets/issues/{issue_number}", 200)
    check(gh, "GET", issue, f"/repos/acme/widgets/issues/{number}", 200)  # a pull request, seen as an issue
    check(gh, "GET", issue, "/repos/acme/widgets/issues/9999", 404)
    for target in (issue_number, number):
        check(gh, "POST", f"{issue}/comments", f"/repos/acme/widgets/issues/{target}/comments", 201, {"body": "hi"})
        comments = check(gh, "GET", f"{issue}/comments", f"/repos/acme/widgets/issues/{target}/comments", 200)
        check(gh, "PATCH", f"{REPO}/issues/comments/{{comment_id}}",
              f"/repos/acme/widgets/issues/comments/{comments[-1]['id']}", 200, {"body": "edited"})
        check(gh, "POST", f"{issue}/labels", f"/repos/acme/widgets/issues/{target}/labels", 200,
              {"labels": ["cloud-run", "extra"]})  # fmt: skip
        check(gh, "GET", f"{issue}/labels", f"/repos/acme/widgets/issues/{target}/labels", 200)
        check(gh, "DELETE", f"{issue}/labels/{{name}}", f"/repos/acme/widgets/issues/{target}/labels/extra", 200)
        check(gh, "DELETE", f"{issue}/labels/{{name}}", f"/repos/acme/widgets/issues/{target}/labels/extra", 404)
    check(gh, "POST", f"{issue}/comments", f"/repos/acme/widgets/issues/{issue_number}/comments", 422, {"body": ""})
    check(gh, "PATCH", f"{REPO}/issues/comments/{{comment_id}}",
          f"/repos/acme/widgets/issues/comments/{comments[-1]['id']}", 422, {"body": ""})

    users = "/users/{username}"
    check(gh, "GET", users, "/users/cloud-runs-dev%5Bbot%5D", 200)
    check(gh, "GET", users, "/users/alice", 200)
    check(gh, "GET", users, "/users/acme", 200)
    check(gh, "GET", users, "/users/nobody-here", 404)
    permission = f"{REPO}/collaborators/{{username}}/permission"
    check(gh, "GET", permission, "/repos/acme/widgets/collaborators/alice/permission", 200)
    check(gh, "GET", permission, "/repos/acme/widgets/collaborators/acme/permission", 200)

    check(gh, "DELETE", "/installation/token", "/installation/token", 204)
    assert len(check.covered) >= 30

    broken = copy.deepcopy(pr)
    del broken["head"]["repo"]["owner"]["login"]
    with pytest.raises(AssertionError, match="login"):
        github_openapi.validate("POST", pulls, 201, broken)


@pytest.mark.parametrize(
    ("template", "status"),
    [("/repos/{owner}/{repo}/pulls", 422), ("/users/{username}", 404)],
)
def test_validator_rejects_wrong_shapes(github_openapi: OpenApi, template: str, status: int) -> None:
    """The check itself can fail: a body missing required fields is refused."""
    method = "POST" if template.endswith("/pulls") else "GET"
    with pytest.raises(AssertionError):
        github_openapi.validate(method, template, status, {"message": 42})
    with pytest.raises(AssertionError):
        github_openapi.validate("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", 200, {"number": 1, "title": "x"})
