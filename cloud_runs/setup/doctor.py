"""``cloud-runs doctor``: every misconfiguration, named with its fix, before the first run.

Each check passes, fails, or warns (something optional is missing); checks that
depend on a failed one are skipped. Every external call has a short timeout, so
the whole checklist finishes in seconds. Nothing secret is printed: the private
key is described by type, size and fingerprint only.

Example:
    $ cloud-runs doctor --repository acme/widgets
    PASS  settings          GitHub App settings present (client id Iv23li..., API https://api.github.com)
    PASS  private key       RSA 2048-bit, SHA256:...
    FAIL  installation      the GitHub App is not installed on acme/widgets (or the repository does not exist)
          fix: install it on acme/widgets at https://github.com/apps/cloud-runs-acme/installations/new
"""

from __future__ import annotations

import argparse
import contextvars
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

from cloud_runs.errors import CloudRunsError
from cloud_runs.settings import Settings
from cloud_runs.setup.manifest import REQUIRED_PERMISSIONS

Status = Literal["pass", "fail", "warn", "skip"]
T = TypeVar("T")

OPTIONAL_PERMISSIONS = {
    "issues": ("write", "issue-driven runs and comments on issues"),
    "workflows": ("write", "agents changing files under .github/workflows/"),
}
_LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}
#: Seconds allowed for each external call (GitHub, Docker, Modal, Prefect).
CALL_TIMEOUT = 10.0
def _block_types() -> dict[str, str]:
    """Check label -> block type slug, read from the block classes (imported late: they import Prefect)."""
    from blocks import SANDBOX_BLOCKS, AgentCredentials, GitHubApp

    types = {"GitHub App": GitHubApp.get_block_type_slug(), "Agent Credentials": AgentCredentials.get_block_type_slug()}
    types.update({f"{provider} sandbox": block.get_block_type_slug() for provider, block in SANDBOX_BLOCKS.items()})
    return types


CREATE_APP_HINT = "run `cloud-runs app create`, or copy them from the App's settings page into .env"
BLOCKS_HINT = "run `cloud-runs blocks init` (saves the blocks from .env)"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: Status
    detail: str
    hint: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``cloud-runs doctor`` to ``parser``."""
    parser.add_argument("--repository", help="also check the App's installation on owner/name and its default branch")
    parser.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    parser.add_argument("--env-file", type=Path, help="read this .env file instead of the one found from the working directory")
    parser.add_argument("--block-name", default="default", help="name of the block documents to look for (default: default)")
    parser.add_argument("--timeout", type=float, default=CALL_TIMEOUT, help="seconds allowed for each external call (default: 10)")


class _Timeout(Exception):
    pass


def _within(seconds: float, call: Callable[[], T]) -> T:
    """Runs ``call`` in a daemon thread; raises :class:`_Timeout` when it takes longer than ``seconds``.

    SDKs that retry internally (Modal's gRPC client) get no timeout of their own from us, so
    the answer is abandoned instead; the daemon thread never holds up the exit.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    context = contextvars.copy_context()  # Prefect's settings (profiles, temporary settings) live in context variables
    thread = threading.Thread(target=context.run, args=(target,), daemon=True, name="doctor-check")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise _Timeout(f"no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class Doctor:
    """Runs the checks in order; later checks use what earlier ones found.

    Args:
        settings: The configuration to check.
        repository: ``owner/name`` to check the installation on, if any.
        block_name: Name of the block documents to look for.
        timeout: Seconds allowed for each external call.
    """

    def __init__(self, settings: Settings, repository: str | None = None, block_name: str = "default", timeout: float = CALL_TIMEOUT) -> None:
        self.settings = settings
        self.repository = repository
        self.block_name = block_name
        self.timeout = timeout
        self.checks: list[Check] = []
        self._auth: Any = None
        self._app: dict[str, Any] | None = None

    def add(self, name: str, status: Status, detail: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, status, detail, hint))

    def run(self) -> list[Check]:
        key = self.check_settings() and self.check_private_key()
        if key:
            self.check_app()
        else:
            self.add("GitHub App", "skip", "needs the settings and the private key above")
        if self._app is not None:
            self.check_permissions()
        if self.repository:
            if self._app is not None:
                self.check_installation()
            else:
                self.add("installation", "skip", f"needs the App to answer before checking {self.repository}")
        self.check_sandbox()
        self.check_prefect()
        self.check_agent()
        if self._auth is not None:
            try:
                self._auth.revoke_all()
            except CloudRunsError:
                pass  # the tokens expire within the hour anyway
            self._auth.close()
        return self.checks

    # GitHub ------------------------------------------------------------------
    def check_settings(self) -> bool:
        s = self.settings
        missing = [name for name, value in (("GITHUB_APP_CLIENT_ID", s.github_app_client_id),
                                            ("GITHUB_APP_PRIVATE_KEY", s.github_app_private_key)) if not value]  # fmt: skip
        if missing:
            self.add("settings", "fail", f"{', '.join(missing)} not set", CREATE_APP_HINT)
            return False
        optional = [name for name, value in (("GITHUB_APP_ID", s.github_app_id), ("GITHUB_APP_SLUG", s.github_app_slug)) if not value]
        detail = f"GitHub App settings present (client id {s.github_app_client_id}, API {s.github_api_url})"
        if optional:
            self.add("settings", "warn", f"{detail}; {', '.join(optional)} not set",
                     "set them too (GitHub Enterprise Server 3.13 and older need GITHUB_APP_ID)")  # fmt: skip
        else:
            self.add("settings", "pass", detail)
        return True

    def check_private_key(self) -> bool:
        from cloud_runs.github.keys import describe_key, key_fingerprint, load_private_key

        try:
            key = load_private_key(self.settings.github_app_private_key)
        except CloudRunsError as e:
            self.add("private key", "fail", e.message, e.hint)
            return False
        if key.key_size < 2048:
            self.add("private key", "fail", f"{describe_key(key)} is too small for GitHub",
                     "generate a new private key on the App's settings page")  # fmt: skip
            return False
        self.add("private key", "pass", f"{describe_key(key)}, {key_fingerprint(key)}")
        return True

    def _web_url(self) -> str:
        return self.settings.github_web_url

    def _app_settings_url(self) -> str:
        slug = (self._app or {}).get("slug") or self.settings.github_app_slug or "<slug>"
        owner = ((self._app or {}).get("owner") or {})
        if owner.get("type") == "Organization":
            return f"{self._web_url()}/organizations/{owner['login']}/settings/apps/{slug}"
        return f"{self._web_url()}/settings/apps/{slug}"

    def check_app(self) -> None:
        from cloud_runs.github.app import GitHubAppAuth
        from cloud_runs.github.errors import GitHubAuthenticationError, GitHubError
        from cloud_runs.github.retry import RetryPolicy

        s = self.settings
        # One attempt: the doctor reports, it does not wait out outages.
        self._auth = GitHubAppAuth.from_settings(
            s, timeout=self.timeout, retry=RetryPolicy(attempts=1), seconds_between_requests=None, seconds_between_writes=None
        )
        issuer = "GITHUB_APP_ID" if s.github_app_id else "GITHUB_APP_CLIENT_ID"
        try:
            app = _within(self.timeout * 2, self._auth.app)
        except GitHubAuthenticationError:
            self.add(
                "GitHub App", "fail",
                f"GitHub rejected the App's JWT (401): the key parses, so the key does not belong to this App or {issuer} is wrong",
                f"compare {issuer} with the App's settings page ({self._app_settings_url()}) and generate a new "
                "private key there if it still fails",
            )  # fmt: skip
            return
        except (GitHubError, _Timeout) as e:
            message = e.message if isinstance(e, GitHubError) else str(e)
            self.add("GitHub App", "fail", f"GET /app at {s.github_api_url} failed: {message}",
                     "check GITHUB_API_URL and that the host answers")  # fmt: skip
            return
        mismatches = []
        if s.github_app_client_id and app.get("client_id") and app["client_id"] != s.github_app_client_id:
            mismatches.append(f"GITHUB_APP_CLIENT_ID is {s.github_app_client_id} but the key's App has client id {app['client_id']}")
        if s.github_app_id and str(app.get("id")) != s.github_app_id:
            mismatches.append(f"GITHUB_APP_ID is {s.github_app_id} but the App answering has id {app.get('id')}")
        if s.github_app_slug and app.get("slug") != s.github_app_slug:
            mismatches.append(f"GITHUB_APP_SLUG is {s.github_app_slug} but the App's slug is {app.get('slug')}")
        self._app = app
        if mismatches:
            self.add("GitHub App", "fail", "; ".join(mismatches),
                     f"copy the values from the App's settings page ({self._app_settings_url()})")  # fmt: skip
            return
        self.add("GitHub App", "pass", f"{app.get('name')} ({app.get('slug')}, id {app.get('id')}) answers GET /app")

    def check_permissions(self) -> None:
        granted = (self._app or {}).get("permissions") or {}
        short = [f"{name}: {level}" for name, level in REQUIRED_PERMISSIONS.items()
                 if _LEVELS.get(granted.get(name, "none"), 0) < _LEVELS[level]]  # fmt: skip
        where = f"{self._app_settings_url()}/permissions"
        if short:
            self.add("permissions", "fail", f"the App lacks {', '.join(short)}, which every run needs",
                     f"add them at {where} (owners then accept the new permissions on each installation)")  # fmt: skip
        else:
            self.add("permissions", "pass", ", ".join(f"{k}: {granted[k]}" for k in REQUIRED_PERMISSIONS))
        for name, (level, purpose) in OPTIONAL_PERMISSIONS.items():
            if _LEVELS.get(granted.get(name, "none"), 0) >= _LEVELS[level]:
                self.add(f"{name} permission", "pass", f"{name}: {granted[name]} (optional, for {purpose})")
            else:
                self.add(f"{name} permission", "warn", f"optional {name}: {level} not granted; needed for {purpose}",
                         f"add it at {where} if you need it")  # fmt: skip

    def check_installation(self) -> None:
        from cloud_runs.github.errors import AppNotInstalledError, GitHubError, GitHubPermissionError

        repository = self.repository or ""
        try:
            installation = _within(self.timeout * 2, lambda: self._auth.installation_id(repository))
        except AppNotInstalledError as e:
            self.add("installation", "fail", e.message, e.hint)
            return
        except (GitHubError, _Timeout) as e:
            self.add("installation", "fail", f"could not look up the installation on {repository}: {getattr(e, 'message', e)}",
                     "check the repository name (owner/name)")  # fmt: skip
            return
        except CloudRunsError as e:  # invalid owner/name
            self.add("installation", "fail", e.message, e.hint)
            return
        try:
            client = self._auth.client(repository, REQUIRED_PERMISSIONS)
            branch = _within(self.timeout * 2, lambda: client.get_repo(repository).default_branch)
        except GitHubPermissionError as e:
            self.add("installation", "fail", f"installation {installation} on {repository}: {e.message}",
                     e.hint or "accept the App's permissions on the installation's settings page")  # fmt: skip
            return
        except (GitHubError, _Timeout, Exception) as e:  # noqa: BLE001 - reported, never raised
            self.add("installation", "fail", f"could not read {repository} as the App: {getattr(e, 'message', type(e).__name__)}",
                     "check the installation's repository access")  # fmt: skip
            return
        self.add("installation", "pass", f"installation {installation} covers {repository} with the permissions runs need")
        self.add("default branch", "pass", f"{repository} builds on {branch}")

    # sandbox -----------------------------------------------------------------
    def check_sandbox(self) -> None:
        s = self.settings
        provider = s.sandbox_provider
        if s.is_production and provider in ("docker", "local"):
            self.add("sandbox", "fail", f"SANDBOX_PROVIDER={provider} is refused in production (CLOUD_RUNS_ENVIRONMENT=production)",
                     "use the modal provider (SANDBOX_PROVIDER=modal) in production")  # fmt: skip
            return
        if provider == "docker":
            self.check_docker()
        elif provider == "modal":
            self.check_modal()
        else:
            self.add("sandbox", "warn", "SANDBOX_PROVIDER=local runs agents on this machine without isolation",
                     "use docker (SANDBOX_PROVIDER=docker) unless the agent is trusted")  # fmt: skip

    def check_docker(self) -> None:
        from cloud_runs.sandboxes.base import SandboxError
        from cloud_runs.sandboxes.docker import BUILD_HINT, DockerSandboxSettings

        image = self.settings.sandbox_image
        try:
            client = _within(self.timeout * 2, DockerSandboxSettings(image=image, api_timeout_seconds=max(1, int(self.timeout))).client)
        except SandboxError as e:
            self.add("sandbox", "fail", e.message, e.hint)
            return
        except _Timeout as e:
            self.add("sandbox", "fail", f"the Docker engine does not answer ({e})", "start one with scripts/docker-engine start")
            return
        from docker.errors import DockerException, ImageNotFound

        try:
            version = client.version().get("Version", "?")
            found = client.images.get(image)
        except ImageNotFound:
            self.add("sandbox", "fail", f"the sandbox image {image} (SANDBOX_IMAGE) does not exist", BUILD_HINT)
            return
        except DockerException as e:
            self.add("sandbox", "fail", f"the Docker engine failed to answer: {type(e).__name__}", "check the engine's logs")
            return
        finally:
            client.close()
        self.add("sandbox", "pass", f"Docker {version} answers; image {image} is {found.short_id}")

    def check_modal(self) -> None:
        s = self.settings
        from cloud_runs.sandboxes.modal import CREDENTIALS_HINT

        if not (s.modal_token_id and s.modal_token_secret):
            missing = [n for n, v in (("MODAL_TOKEN_ID", s.modal_token_id), ("MODAL_TOKEN_SECRET", s.modal_token_secret)) if not v]
            self.add("sandbox", "fail", f"SANDBOX_PROVIDER=modal but {', '.join(missing)} not set", CREDENTIALS_HINT)
            return

        def hello() -> None:
            from cloud_runs.sandboxes.modal import ModalSandboxSettings

            client = ModalSandboxSettings(token_id=s.modal_token_id, token_secret=s.modal_token_secret).client()
            try:
                client.hello()  # an authenticated round trip: a bad token is refused here
            finally:
                client.close()

        try:
            _within(self.timeout, hello)
        except _Timeout as e:
            self.add("sandbox", "fail", f"Modal did not answer ({e})", "check the network to Modal (api.modal.com), then retry")
            return
        except Exception as e:  # noqa: BLE001 - Modal's errors carry no token
            self.add("sandbox", "fail", f"Modal refused the credentials or did not answer: {type(e).__name__}: {str(e)[:200]}",
                     CREDENTIALS_HINT)  # fmt: skip
            return
        self.add("sandbox", "pass", f"Modal accepted token {s.modal_token_id}")

    # Prefect -----------------------------------------------------------------
    def check_prefect(self) -> None:
        from prefect.settings import PREFECT_API_URL

        api_url = PREFECT_API_URL.value()
        if not api_url:
            self.add("Prefect API", "warn", "PREFECT_API_URL is not set: Prefect runs a temporary local API, blocks were not checked",
                     "start a server (prefect server start) and set PREFECT_API_URL, or use Prefect Cloud")  # fmt: skip
            return
        block_types = _block_types()
        try:
            error, found = _within(self.timeout * 2, lambda: self._read_blocks(block_types))
        except _Timeout as e:
            self.add("Prefect API", "fail", f"{api_url} did not answer ({e})", "start the server (prefect server start) or fix PREFECT_API_URL")
            return
        if error is not None:
            self.add("Prefect API", "fail", f"{api_url} did not answer: {type(error).__name__}",
                     "start the server (prefect server start) or fix PREFECT_API_URL")  # fmt: skip
            return
        self.add("Prefect API", "pass", f"{api_url} answers")
        types, documents = found
        unknown = [label for label, slug in block_types.items() if slug not in types]
        if unknown:
            self.add("block types", "fail", f"the Prefect API does not know the {', '.join(unknown)} block types",
                     f"{BLOCKS_HINT}, or `prefect block register -m blocks`")  # fmt: skip
        else:
            self.add("block types", "pass", "Cloud Runs block types are registered")
        sandbox_label = f"{self.settings.sandbox_provider} sandbox"
        needed = {label: block_types[label] for label in ("GitHub App", sandbox_label)}
        missing = [label for label, slug in needed.items() if slug not in documents]
        if missing:
            self.add("blocks", "fail", f"no {', '.join(missing)} block named {self.block_name!r}", BLOCKS_HINT)
        else:
            self.add("blocks", "pass", f"the {', '.join(needed)} blocks named {self.block_name!r} exist")

    def _read_blocks(self, block_types: dict[str, str]) -> tuple[Exception | None, tuple[set[str], set[str]]]:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        types: set[str] = set()
        documents: set[str] = set()
        with get_client(sync_client=True) as client:
            error = client.api_healthcheck()
            if error is not None:
                return error, (types, documents)
            for slug in block_types.values():
                try:
                    client.read_block_type_by_slug(slug)
                except ObjectNotFound:
                    continue
                types.add(slug)
                try:
                    client.read_block_document_by_name(self.block_name, slug, include_secrets=False)
                except ObjectNotFound:
                    continue
                documents.add(slug)
        return None, (types, documents)

    # agent -------------------------------------------------------------------
    def check_agent(self) -> None:
        from cloud_runs.agents import agent_settings_from_name

        name = self.settings.agent
        try:
            required = agent_settings_from_name(name).adapter().required_secrets
        except CloudRunsError as e:
            self.add("agent", "fail", f"CLOUD_RUNS_AGENT={name}: {e.message}", e.hint)
            return
        missing = [key for key in required if not getattr(self.settings, key.lower(), "")]
        if missing:
            self.add("agent", "fail", f"CLOUD_RUNS_AGENT={name} needs {', '.join(missing)}, which is not set",
                     f"set {', '.join(missing)} in .env, then run `cloud-runs blocks init`")  # fmt: skip
        elif required:
            self.add("agent", "pass", f"{name}: {', '.join(required)} set")
        else:
            self.add("agent", "pass", f"{name} needs no model key")


def run_checks(settings: Settings, repository: str | None = None, block_name: str = "default", timeout: float = CALL_TIMEOUT) -> list[Check]:
    """Runs every check; never raises for a misconfiguration (it becomes a failed check)."""
    return Doctor(settings, repository, block_name, timeout).run()


def render(checks: list[Check], out: TextIO) -> None:
    """Prints the checklist: one line per check, the fix under each failure or warning."""
    width = max(len(c.name) for c in checks) + 2
    for check in checks:
        print(f"{check.status.upper():5} {check.name:<{width}}{check.detail}", file=out)
        if check.hint and check.status in ("fail", "warn"):
            print(f"{'':6}{'':<{width}}fix: {check.hint}", file=out)
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    print(f"\n{failed} failed, {warned} warnings, {sum(c.status == 'pass' for c in checks)} passed", file=out)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point of ``cloud-runs doctor``: 0 when nothing failed, 1 otherwise."""
    from cloud_runs.settings import load_settings

    out = out or sys.stdout
    try:
        settings = load_settings(args.env_file)
    except CloudRunsError as e:
        checks = [Check("settings", "fail", e.message, e.hint)]
    else:
        checks = run_checks(settings, args.repository, args.block_name, args.timeout)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2), file=out)
    else:
        render(checks, out)
    return 1 if any(c.status == "fail" for c in checks) else 0
