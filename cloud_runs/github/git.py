"""Running the real ``git`` CLI with a token that never touches disk or argv.

A token in a URL's userinfo part ends up in
``.git/config``, in the command line of git and its helpers, and in traces.
Instead the token travels as an HTTP header configured through git's
environment-only config (``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/
``GIT_CONFIG_VALUE_n``): nothing is written to the repository, nothing shows
in ``ps``, and git's traces redact the ``Authorization`` header. Credential
helpers are switched off so none can store it, and prompting is disabled so a
rejected token fails fast instead of waiting for a password.

The same environment works for a local subprocess and for a ``git clone``
executed inside a sandbox.

Example:
    >>> env = git_auth_env(token.value, "https://github.com/acme/widgets.git")  # doctest: +SKIP
    >>> run_git(clone_argv("https://github.com/acme/widgets.git", "widgets")[1:], cwd=".", env=env)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from cloud_runs.errors import InputError
from cloud_runs.github.errors import GitError
from cloud_runs.redact import Redactor

__all__ = ["DEFAULT_GIT_TIMEOUT", "clone_argv", "git_auth_env", "git_base_env", "redactor_for_env", "run_git"]

logger = logging.getLogger(__name__)

DEFAULT_GIT_TIMEOUT = 600.0

# Variables that would point git at another repository or config than the one we mean.
_INHERITED_GIT_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
)


def _origin(url: str) -> str:
    """``scheme://host[:port]/`` of a remote URL; refuses URLs that carry credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"git remote {url!r} is not an http(s) URL", hint="use the repository's https clone URL")
    if parts.username or parts.password:
        # Never echo it: the userinfo may be a token.
        raise InputError(
            "git remote URL carries credentials in it", hint="pass the bare https URL; the token goes in the environment"
        )
    return f"{parts.scheme}://{parts.netloc}/"


def git_auth_env(token: str, url: str) -> dict[str, str]:
    """Environment variables that make git send ``token`` to ``url``'s host, and nowhere else.

    Args:
        token: An installation token.
        url: The remote URL (or any URL on the same scheme, host and port).

    Returns:
        Variables to add to git's environment (they replace any
        ``GIT_CONFIG_COUNT`` the environment already has).

    Example:
        >>> env = git_auth_env("ghs_example_token_value", "https://github.com/acme/widgets.git")
        >>> env["GIT_CONFIG_KEY_1"]
        'http.https://github.com/.extraheader'
    """
    if not token or any(c in token for c in "\r\n"):
        raise InputError("the git token is empty or contains a line break", hint="pass the installation token value")
    origin = _origin(url)
    credential = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    header_key = f"http.{origin}.extraheader"
    config = [
        # An empty value resets extra headers inherited from global config,
        # so exactly one Authorization header is sent.
        (header_key, ""),
        (header_key, f"Authorization: Basic {credential}"),
        # An empty helper list: no credential helper sees (or stores) anything.
        ("credential.helper", ""),
    ]
    env = {
        "GIT_CONFIG_COUNT": str(len(config)),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        # A rejected token must fail, not ask for a password.
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def clone_argv(url: str, dest: str, *, branch: str | None = None, depth: int | None = None) -> list[str]:
    """The ``git clone`` command line (no token in it; pair it with :func:`git_auth_env`).

    Example:
        >>> clone_argv("https://github.com/acme/widgets.git", "/work/repo", depth=1)
        ['git', '-c', 'credential.helper=', 'clone', '--depth', '1', '--', 'https://github.com/acme/widgets.git', '/work/repo']
    """
    _origin(url)
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise InputError(f"clone depth {depth!r} is not a positive integer", hint="pass depth=None for full history")
    argv = ["git", "-c", "credential.helper=", "clone"]
    if branch:
        if branch.startswith("-"):
            raise InputError(f"branch {branch!r} starts with '-'", hint="pass a branch name")
        argv += ["--branch", branch]
    if depth is not None:
        argv += ["--depth", str(depth)]
    return argv + ["--", url, dest]


def git_base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a local git process: ours, minus variables that redirect git."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARIABLES and not k.startswith("GIT_CONFIG_")}
    env["LC_ALL"] = "C"  # stable messages, which we parse
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def redactor_for_env(env: Mapping[str, str] | None, secrets: Iterable[str] = ()) -> Redactor:
    """A redactor that knows the secrets inside git auth variables (and ``secrets``)."""
    redactor = Redactor(secrets)
    for value in (env or {}).values():
        if value.startswith("Authorization:"):
            redactor.add(value)
            try:  # the token itself; Redactor.add also registers its Basic-auth encoding
                redactor.add(base64.b64decode(value.split()[-1]).decode().partition(":")[2])
            except (ValueError, UnicodeDecodeError):
                pass
    return redactor


def run_git(
    args: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_GIT_TIMEOUT,
    input: bytes | None = None,
    secrets: Iterable[str] = (),
) -> str:
    """Runs ``git <args>`` and returns its stdout.

    Args:
        args: Arguments after ``git``.
        cwd: Working directory.
        env: Variables added to a clean copy of this process's environment
            (e.g. :func:`git_auth_env`).
        timeout: Seconds before the process is killed.
        input: Bytes for stdin.
        secrets: Extra values to redact from error output.

    Raises:
        GitError: Non-zero exit or timeout; stderr has every secret redacted.

    Example:
        >>> run_git(["--version"], cwd=".").startswith("git version")
        True
    """
    argv = ["git", *args]
    redactor = redactor_for_env(env, secrets)
    command = redactor.redact(" ".join(argv[:4]))
    try:
        # A session of its own, so a timeout kills git's helpers (git-remote-http) too.
        process = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=git_base_env(env),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise GitError("the git executable was not found", hint="install git (apt-get install git)") from None
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise GitError(
            f"`{command}` did not finish within {timeout:g}s", hint="check the network path to the git host"
        ) from None
    completed = subprocess.CompletedProcess(argv, process.returncode, out, err)
    stdout = completed.stdout.decode("utf-8", errors="replace")
    if completed.returncode != 0:
        stderr = redactor.redact(completed.stderr.decode("utf-8", errors="replace").strip())
        raise GitError(
            f"`{command}` failed with exit code {completed.returncode}: {stderr[-2000:]}",
            hint=_hint_for(stderr),
            stderr=stderr,
            returncode=completed.returncode,
        )
    return stdout


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def _hint_for(stderr: str) -> str:
    lowered = stderr.lower()
    if "authentication failed" in lowered or "could not read username" in lowered or " 401" in lowered:
        return "the token was rejected: it may have expired, been revoked, or not cover this repository"
    if " 403" in lowered or "permission" in lowered:
        return "the token lacks the permission this operation needs"
    if "could not resolve host" in lowered or "connection" in lowered or "timed out" in lowered:
        return "check the network path to the git host"
    return "see git's message above"
