"""The forge's records: users, apps, installations, tokens, repositories, issues.

Plain dataclasses guarded by one lock held by :class:`~cloud_runs.forge.forge.Forge`.
Tokens are stored only as SHA-256 digests, so no record (and no ``repr``) can
ever show a token string.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# Permission levels in increasing order; "none" means absent.
LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}


def token_digest(token: str) -> str:
    """The key under which a token's record is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def grants(permissions: dict[str, str], name: str, level: str) -> bool:
    """True when ``permissions[name]`` is at least ``level``."""
    return LEVELS.get(permissions.get(name, "none"), 0) >= LEVELS[level]


@dataclass
class User:
    id: int
    login: str
    type: str  # "User", "Organization" or "Bot"
    created_at: float


@dataclass
class ForgeApp:
    """A GitHub App registered on the forge.

    Attributes:
        id: The App ID.
        client_id: The Client ID (``Iv23...``), accepted as JWT issuer like the App ID.
        slug: URL name; the bot user is ``<slug>[bot]``.
        name: Display name.
        private_key_pem: PKCS#1 PEM of the App's 2048-bit RSA key.
        bot_user_id: Id of the ``<slug>[bot]`` user.
        permissions: The App's permissions, e.g. ``{"contents": "write"}``.
    """

    id: int
    client_id: str
    slug: str
    name: str
    private_key_pem: str = field(repr=False)
    bot_user_id: int
    permissions: dict[str, str]
    owner: str = ""
    public_key_pem: str = field(default="", repr=False)
    created_at: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class Installation:
    id: int
    app_id: int
    owner: str
    repositories: list[str] | None  # repository names; None means all of the owner's
    permissions: dict[str, str]
    created_at: float


@dataclass
class TokenRecord:
    """An installation access token as the forge remembers it (never the string).

    Attributes:
        id: Sequence number of the token on this forge.
        installation_id: Installation that minted it.
        repositories: Repository names it may reach; None means every one of the installation's.
        permissions: What it may do.
        expires_at: Expiry on the forge clock (epoch seconds).
        revoked: Set by ``DELETE /installation/token``.
    """

    id: int
    installation_id: int
    repositories: list[str] | None
    permissions: dict[str, str]
    created_at: float
    expires_at: float
    revoked: bool = False
    digest: str = field(default="", repr=False)


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None = None


@dataclass
class Comment:
    id: int
    user: str
    body: str
    created_at: float
    updated_at: float
    app_id: int | None = None


@dataclass
class Issue:
    """An issue or a pull request (they share numbers, like on GitHub)."""

    id: int
    number: int
    title: str
    body: str | None
    user: str
    created_at: float
    updated_at: float
    state: str = "open"
    closed_at: float | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    app_id: int | None = None
    # Pull request fields; `pull_id` is None for plain issues.
    pull_id: int | None = None
    head_ref: str = ""
    head_sha: str = ""
    base_ref: str = ""
    draft: bool = False
    requested_reviewers: list[str] = field(default_factory=list)

    @property
    def is_pull(self) -> bool:
        return self.pull_id is not None


@dataclass
class Repository:
    id: int
    owner: str
    name: str
    private: bool
    default_branch: str
    description: str
    created_at: float
    pushed_at: float
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> read|write|admin
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    issues: dict[int, Issue] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class RequestRecord:
    """One request the forge answered (for assertions in tests).

    Attributes:
        method: HTTP method.
        path: Path without the query string.
        query: Parsed query string.
        status: Status code sent.
        auth: "jwt", "installation_token", "anonymous" or "invalid".
        token_id: Id of the installation token used, if any.
        app_id: Id of the App whose JWT was used, if any.
        fault: The injected fault that answered it, if any.
        chunked: Whether the request body came with ``Transfer-Encoding: chunked``.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    auth: str
    token_id: int | None = None
    app_id: int | None = None
    fault: str | None = None
    chunked: bool = False


@dataclass
class FaultRule:
    method: str
    pattern: Any  # compiled regex
    fault: str
    remaining: int
    seconds: float
