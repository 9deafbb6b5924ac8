"""Saving and loading the forge's records as ``<root>/state.json``.

Repositories live as bare git repositories under ``<root>/repositories``; the
rest (users, apps, installations, token records, issues, pull requests) is
written here after every change, so ``cloud-runs forge serve --root DIR`` picks
up where it stopped. Token strings are never stored, only their digests; the
file holds the Apps' private keys and is created readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_runs.forge.state import Comment, ForgeApp, Installation, Issue, Label, Repository, TokenRecord, User

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

STATE_FILE = "state.json"
FORMAT = 1


def save(forge: Forge) -> None:
    """Writes the forge's records atomically (caller holds the forge's lock)."""
    data = {
        "format": FORMAT,
        "next_id": forge._next_id_value(),
        "users": [asdict(u) for u in forge._users.values()],
        "apps": [asdict(a) for a in forge._apps.values()],
        "installations": [asdict(i) for i in forge._installations.values()],
        "tokens": [asdict(t) for t in forge._tokens],
        "repositories": [asdict(r) for r in forge._repos.values()],
    }
    path = forge.root / STATE_FILE
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    partial.replace(path)


def load(forge: Forge) -> bool:
    """Reads ``state.json`` into an empty forge; returns False when there is none."""
    path = forge.root / STATE_FILE
    if not path.exists():
        return False
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} has format {data.get('format')}, expected {FORMAT}")
    for raw in data["users"]:
        user = User(**raw)
        forge._users[user.login.lower()] = user
    for raw in data["apps"]:
        app = ForgeApp(**raw)
        forge._apps[app.id] = app
    for raw in data["installations"]:
        inst = Installation(**raw)
        forge._installations[inst.id] = inst
    for raw in data["tokens"]:
        token = TokenRecord(**raw)
        forge._tokens.append(token)
        forge._token_index[token.digest] = token
    for raw in data["repositories"]:
        raw["labels"] = {k: Label(**v) for k, v in raw["labels"].items()}
        issues = {}
        for number, issue_raw in raw["issues"].items():
            issue_raw["comments"] = [Comment(**c) for c in issue_raw["comments"]]
            issues[int(number)] = Issue(**issue_raw)
        raw["issues"] = issues
        repo = Repository(**raw)
        forge._repos[repo.full_name.lower()] = repo
    forge._set_next_id(int(data["next_id"]))
    return True
