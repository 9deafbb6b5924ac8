"""Writing settings into a `.env` file without losing what is already there.

Lines are kept as they are (comments, order, other variables); a variable that
already has a non-empty value is kept unless ``force`` is set; new variables are
appended. Multi-line values (the App's private key) are written on one line with
literal ``\\n``, the form :func:`cloud_runs.settings.load_settings` reads back.

Example:
    >>> update = update_env_file(Path(".env"), {"GITHUB_APP_SLUG": "cloud-runs-acme"})
    >>> update.written, update.kept
    (['GITHUB_APP_SLUG'], [])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=(?P<value>.*)$")


@dataclass(frozen=True)
class EnvUpdate:
    """What :func:`update_env_file` did, by variable name (never values)."""

    path: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def one_line(value: str) -> str:
    """A value as one `.env` line: newlines become literal ``\\n``."""
    return value.replace("\r\n", "\n").strip().replace("\n", "\\n")


def _unquote(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    # An unquoted value ends at an inline comment, as python-decouple reads it.
    return value.split(" #", 1)[0].strip()


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a `.env` file (empty when it does not exist); the last assignment wins."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and not line.lstrip().startswith("#"):
            values[match.group("name")] = _unquote(match.group("value"))
    return values


def update_env_file(path: Path, values: dict[str, str], *, force: bool = False) -> EnvUpdate:
    """Sets ``values`` in the `.env` file at ``path``, keeping existing non-empty values unless ``force``.

    The file is replaced atomically and created readable by its owner only (it holds the private key).

    Returns:
        Which variables were written and which were kept.
    """
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    written: list[str] = []
    kept: list[str] = []
    pending = dict(values)
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if not match or line.lstrip().startswith("#") or match.group("name") not in pending:
            continue
        name = match.group("name")
        new_value = pending.pop(name)
        if _unquote(match.group("value")) and not force:
            kept.append(name)
            continue
        lines[index] = f"{name}={one_line(new_value)}"
        written.append(name)
    for name, new_value in pending.items():
        lines.append(f"{name}={one_line(new_value)}")
        written.append(name)
    if written:
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        partial.replace(path)
    return EnvUpdate(path=path, written=written, kept=kept)
