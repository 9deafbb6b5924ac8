"""JSON bodies shaped like GitHub's, built from the forge's own address.

Every ``url``/``html_url``/``clone_url`` points at the forge (PyGithub refuses
to follow URLs to another host). Field sets follow GitHub's published OpenAPI
description; ``tests/forge/test_payloads.py`` validates them against it.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from cloud_runs.forge.gitrepo import CommitInfo
from cloud_runs.forge.state import ForgeApp, Installation, Issue, Label, Repository, User

DOCS = "https://docs.github.com/rest"


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as GitHub writes times."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


def error(message: str, documentation: str = DOCS, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "documentation_url": documentation}
    if errors is not None:
        body["errors"] = errors
    body["status"] = ""  # filled by the server with the status code, as GitHub does
    return body


class Payloads:
    """Builds response bodies for a forge served at ``web`` (API under ``api``)."""

    def __init__(self, web: str, api: str) -> None:
        self.web = web
        self.api = api

    # users -----------------------------------------------------------------
    def simple_user(self, user: User) -> dict[str, Any]:
        login = user.login
        api = f"{self.api}/users/{login}"
        return {
            "login": login,
            "id": user.id,
            "node_id": node_id("U", user.id),
            "avatar_url": f"{self.web}/avatars/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.web}/{login.removesuffix('[bot]') if user.type == 'Bot' else login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def public_user(self, user: User, public_repos: int) -> dict[str, Any]:
        body = self.simple_user(user)
        if user.type == "Bot":
            body["html_url"] = f"{self.web}/apps/{user.login.removesuffix('[bot]')}"
        body.update(
            name=None,
            company=None,
            blog="",
            location=None,
            email=None,
            hireable=None,
            bio=None,
            twitter_username=None,
            public_repos=public_repos,
            public_gists=0,
            followers=0,
            following=0,
            created_at=iso(user.created_at),
            updated_at=iso(user.created_at),
        )
        return body

    # apps ------------------------------------------------------------------
    def integration(self, app: ForgeApp, owner: User, installations: int) -> dict[str, Any]:
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": node_id("A", app.id),
            "client_id": app.client_id,
            "owner": self.simple_user(owner),
            "name": app.name,
            "description": "",
            "external_url": f"{self.web}/apps/{app.slug}",
            "html_url": f"{self.web}/apps/{app.slug}",
            "created_at": iso(app.created_at),
            "updated_at": iso(app.created_at),
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "installations_count": installations,
        }

    def installation(self, inst: Installation, app: ForgeApp, account: User) -> dict[str, Any]:
        return {
            "id": inst.id,
            "client_id": app.client_id,
            "account": self.simple_user(account),
            "repository_selection": "all" if inst.repositories is None else "selected",
            "access_tokens_url": f"{self.api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/organizations/{account.login}/settings/installations/{inst.id}",
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": account.id,
            "target_type": account.type if account.type != "Bot" else "User",
            "permissions": dict(inst.permissions),
            "events": list(app.events),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # repositories ----------------------------------------------------------
    def repository(
        self, repo: Repository, owner: User, *, open_issues: int, permissions: dict[str, bool] | None, full: bool
    ) -> dict[str, Any]:
        base = f"{self.api}/repos/{repo.full_name}"
        html = f"{self.web}/{repo.full_name}"
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.simple_user(owner),
            "private": repo.private,
            "html_url": html,
            "description": repo.description or None,
            "fork": False,
            "url": base,
            "archive_url": f"{base}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{base}/assignees{{/user}}",
            "blobs_url": f"{base}/git/blobs{{/sha}}",
            "branches_url": f"{base}/branches{{/branch}}",
            "collaborators_url": f"{base}/collaborators{{/collaborator}}",
            "comments_url": f"{base}/comments{{/number}}",
            "commits_url": f"{base}/commits{{/sha}}",
            "compare_url": f"{base}/compare/{{base}}...{{head}}",
            "contents_url": f"{base}/contents/{{+path}}",
            "contributors_url": f"{base}/contributors",
            "deployments_url": f"{base}/deployments",
            "downloads_url": f"{base}/downloads",
            "events_url": f"{base}/events",
            "forks_url": f"{base}/forks",
            "git_commits_url": f"{base}/git/commits{{/sha}}",
            "git_refs_url": f"{base}/git/refs{{/sha}}",
            "git_tags_url": f"{base}/git/tags{{/sha}}",
            "git_url": f"{self.web.replace('http://', 'git://', 1)}/{repo.full_name}.git",
            "issue_comment_url": f"{base}/issues/comments{{/number}}",
            "issue_events_url": f"{base}/issues/events{{/number}}",
            "issues_url": f"{base}/issues{{/number}}",
            "keys_url": f"{base}/keys{{/key_id}}",
            "labels_url": f"{base}/labels{{/name}}",
            "languages_url": f"{base}/languages",
            "merges_url": f"{base}/merges",
            "milestones_url": f"{base}/milestones{{/number}}",
            "notifications_url": f"{base}/notifications{{?since,all,participating}}",
            "pulls_url": f"{base}/pulls{{/number}}",
            "releases_url": f"{base}/releases{{/id}}",
            "ssh_url": f"git@{self.web.split('://', 1)[1].split(':')[0]}:{repo.full_name}.git",
            "stargazers_url": f"{base}/stargazers",
            "statuses_url": f"{base}/statuses/{{sha}}",
            "subscribers_url": f"{base}/subscribers",
            "subscription_url": f"{base}/subscription",
            "tags_url": f"{base}/tags",
            "teams_url": f"{base}/teams",
            "trees_url": f"{base}/git/trees{{/sha}}",
            "clone_url": f"{html}.git",
            "mirror_url": None,
            "hooks_url": f"{base}/hooks",
            "svn_url": html,
            "homepage": None,
            "language": None,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": repo.default_branch,
            "open_issues_count": open_issues,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "pushed_at": iso(repo.pushed_at),
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.pushed_at),
            "allow_forking": True,
            "web_commit_signoff_required": False,
            "license": None,
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
        }
        if permissions is not None:
            body["permissions"] = permissions
        if full:
            body.update(
                temp_clone_token=None,
                allow_squash_merge=True,
                allow_merge_commit=True,
                allow_rebase_merge=True,
                allow_auto_merge=False,
                delete_branch_on_merge=False,
                allow_update_branch=False,
                use_squash_pr_title_as_default=False,
                squash_merge_commit_title="COMMIT_OR_PR_TITLE",
                squash_merge_commit_message="COMMIT_MESSAGES",
                merge_commit_title="MERGE_MESSAGE",
                merge_commit_message="PR_TITLE",
                network_count=0,
                subscribers_count=0,
            )
            if owner.type == "Organization":
                body["organization"] = self.simple_user(owner)
        return body

    def commit(self, repo: Repository, info: CommitInfo, users: dict[str, User]) -> dict[str, Any]:
        base = f"{self.api}/repos/{repo.full_name}"

        def person(name: str, email: str, when: int) -> dict[str, Any]:
            return {"name": name, "email": email, "date": iso(when)}

        def account(name: str) -> dict[str, Any]:
            user = users.get(name.lower())
            return self.simple_user(user) if user else {}

        return {
            "sha": info.sha,
            "node_id": node_id("C", int(info.sha[:8], 16)),
            "commit": {
                "author": person(info.author_name, info.author_email, info.author_time),
                "committer": person(info.committer_name, info.committer_email, info.committer_time),
                "message": info.message.rstrip("\n"),
                "tree": {"sha": info.tree, "url": f"{base}/git/trees/{info.tree}"},
                "url": f"{base}/git/commits/{info.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{base}/commits/{info.sha}",
            "html_url": f"{self.web}/{repo.full_name}/commit/{info.sha}",
            "comments_url": f"{base}/commits/{info.sha}/comments",
            "author": account(info.author_name),
            "committer": account(info.committer_name),
            "parents": [
                {"sha": p, "url": f"{base}/commits/{p}", "html_url": f"{self.web}/{repo.full_name}/commit/{p}"}
                for p in info.parents
            ],
        }

    def branch(self, repo: Repository, name: str, commit: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.api}/repos/{repo.full_name}/branches/{name}"
        return {
            "name": name,
            "commit": commit,
            "_links": {"self": base, "html": f"{self.web}/{repo.full_name}/tree/{name}"},
            "protected": False,
            "protection": {
                "enabled": False,
                "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
            },
            "protection_url": f"{base}/protection",
        }

    def short_branch(self, repo: Repository, name: str, sha: str) -> dict[str, Any]:
        return {
            "name": name,
            "commit": {"sha": sha, "url": f"{self.api}/repos/{repo.full_name}/commits/{sha}"},
            "protected": False,
        }

    def git_ref(self, repo: Repository, ref: str, sha: str) -> dict[str, Any]:
        base = f"{self.api}/repos/{repo.full_name}/git"
        return {
            "ref": ref,
            "node_id": node_id("REF", repo.id) + base64.b64encode(ref.encode()).decode().rstrip("="),
            "url": f"{base}/{ref}",
            "object": {"sha": sha, "type": "commit", "url": f"{base}/commits/{sha}"},
        }

    # issues and pulls ------------------------------------------------------
    def label(self, repo: Repository, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("LA", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    @staticmethod
    def _reactions(url: str) -> dict[str, Any]:
        counts = dict.fromkeys(("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"), 0)
        return {"url": f"{url}/reactions", "total_count": 0, **counts}

    def issue(
        self, repo: Repository, issue: Issue, user: User, association: str, app: dict[str, Any] | None
    ) -> dict[str, Any]:
        base = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        kind = "pull" if issue.is_pull else "issues"
        body: dict[str, Any] = {
            "url": base,
            "repository_url": f"{self.api}/repos/{repo.full_name}",
            "labels_url": f"{base}/labels{{/name}}",
            "comments_url": f"{base}/comments",
            "events_url": f"{base}/events",
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{issue.number}",
            "id": issue.id,
            "node_id": node_id("I", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.simple_user(user),
            "labels": [self.label(repo, repo.labels[name.lower()]) for name in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "author_association": association,
            "active_lock_reason": None,
            "body": issue.body,
            "closed_by": None,
            "reactions": self._reactions(base),
            "timeline_url": f"{base}/timeline",
            "performed_via_github_app": app,
            "state_reason": "completed" if issue.state == "closed" else None,
        }
        if issue.is_pull:
            pulls = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
            html = f"{self.web}/{repo.full_name}/pull/{issue.number}"
            body["draft"] = issue.draft
            body["pull_request"] = {
                "url": pulls,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": None,
            }
        return body

    def comment(
        self, repo: Repository, issue: Issue, comment: Any, user: User, association: str, app: dict[str, Any] | None
    ) -> dict[str, Any]:
        url = f"{self.api}/repos/{repo.full_name}/issues/comments/{comment.id}"
        kind = "pull" if issue.is_pull else "issues"
        return {
            "id": comment.id,
            "node_id": node_id("IC", comment.id),
            "url": url,
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{issue.number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.simple_user(user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "issue_url": f"{self.api}/repos/{repo.full_name}/issues/{issue.number}",
            "author_association": association,
            "performed_via_github_app": app,
            "reactions": self._reactions(url),
        }

    def _pull_end(self, repo: Repository, repo_body: dict[str, Any], owner: User, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.simple_user(owner),
            "repo": repo_body,
        }

    def pull(
        self,
        repo: Repository,
        issue: Issue,
        *,
        user: User,
        owner: User,
        repo_body: dict[str, Any],
        base_sha: str,
        association: str,
        reviewers: list[User],
        stats: tuple[int, int, int, int] | None,
    ) -> dict[str, Any]:
        """A pull request; ``stats`` (commits, additions, deletions, files) makes it the full shape."""
        base = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
        issue_url = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        html = f"{self.web}/{repo.full_name}/pull/{issue.number}"
        statuses = f"{self.api}/repos/{repo.full_name}/statuses/{issue.head_sha}"
        body: dict[str, Any] = {
            "url": base,
            "id": issue.pull_id,
            "node_id": node_id("PR", issue.pull_id or 0),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_url,
            "commits_url": f"{base}/commits",
            "review_comments_url": f"{base}/comments",
            "review_comment_url": f"{self.api}/repos/{repo.full_name}/pulls/comments{{/number}}",
            "comments_url": f"{issue_url}/comments",
            "statuses_url": statuses,
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.simple_user(user),
            "body": issue.body,
            "labels": [self.label(repo, repo.labels[name.lower()]) for name in issue.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self.simple_user(r) for r in reviewers],
            "requested_teams": [],
            "head": self._pull_end(repo, repo_body, owner, issue.head_ref, issue.head_sha),
            "base": self._pull_end(repo, repo_body, owner, issue.base_ref, base_sha),
            "_links": {
                "self": {"href": base},
                "html": {"href": html},
                "issue": {"href": issue_url},
                "comments": {"href": f"{issue_url}/comments"},
                "review_comments": {"href": f"{base}/comments"},
                "review_comment": {"href": f"{self.api}/repos/{repo.full_name}/pulls/comments{{/number}}"},
                "commits": {"href": f"{base}/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": association,
            "auto_merge": None,
            "draft": issue.draft,
        }
        if stats is not None:
            commits, additions, deletions, files = stats
            body.update(
                merged=False,
                mergeable=issue.state == "open" or None,
                rebaseable=issue.state == "open" or None,
                mergeable_state="draft" if issue.draft else ("clean" if issue.state == "open" else "unknown"),
                merged_by=None,
                comments=len(issue.comments),
                review_comments=0,
                maintainer_can_modify=False,
                commits=commits,
                additions=additions,
                deletions=deletions,
                changed_files=files,
            )
        return body

    def collaborator_permission(self, user: User, permission: str) -> dict[str, Any]:
        levels = {"admin": 3, "maintain": 3, "write": 2, "triage": 1, "read": 1, "none": 0}
        rank = levels[permission]
        body = self.simple_user(user)
        body["permissions"] = {
            "admin": rank >= 3,
            "maintain": rank >= 3,
            "push": rank >= 2,
            "triage": rank >= 1,
            "pull": rank >= 1,
        }
        body["role_name"] = permission
        return {"permission": permission, "role_name": permission, "user": body}
