"""What Cloud Runs costs over doing the same steps by hand.

In one run, against the local forge and a Docker sandbox, with a running
Prefect server:

* **cloud_run**: the full flow with a one-line scripted change;
* **plain script**: the same steps without Prefect or any of our safety
  (start a container, clone with a write token, change one line, commit, push
  from inside the container, open the PR with one HTTP request).

Prints the median of each over N runs and the ratio (target: at most 1.25)::

    .venv/bin/python bench/overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from cloud_runs.demo import STATS_PY, TEST_STATS_PY  # noqa: E402
from cloud_runs.forge import Forge  # noqa: E402

IMAGE = "cloud-runs-sandbox:latest"
CHANGE = {"action": "edit", "path": "stats.py", "old": "/ (len(values) - 1)", "new": "/ len(values)"}


def new_repository(forge: Forge, label: str) -> str:
    name = f"acme/bench-{label}"
    forge.create_repo(name, files={"stats.py": STATS_PY, "test_stats.py": TEST_STATS_PY})
    return name


def plain_script(forge: Forge, app, repository: str) -> float:  # noqa: ANN001
    """The baseline: one container, a write token inside it, push and POST."""
    start = time.perf_counter()
    jwt = _jwt(app, forge)
    installation = _api(forge, "GET", f"/repos/{repository}/installation", jwt)["id"]
    token = _api(forge, "POST", f"/app/installations/{installation}/access_tokens", jwt,
                 {"repositories": [repository.split("/")[1]]})["token"]
    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = ["-e", "GIT_CONFIG_COUNT=1", "-e", f"GIT_CONFIG_KEY_0=http.{forge.url}/.extraheader",
           "-e", f"GIT_CONFIG_VALUE_0=Authorization: Basic {header}"]
    container = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", *env, IMAGE, "sleep", "300"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    try:
        script = (f"git clone -q {forge.url}/{repository}.git /workspace/repo && cd /workspace/repo && "
                  "sed -i 's|/ (len(values) - 1)|/ len(values)|' stats.py && "
                  "git -c user.name=bench -c user.email=bench@example.com commit -qam 'Fix mean' && "
                  "git push -q origin HEAD:refs/heads/plain-fix")
        subprocess.run(["docker", "exec", container, "sh", "-c", script], check=True, capture_output=True, timeout=120)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
    _api(forge, "POST", f"/repos/{repository}/pulls", token,
         {"title": "Fix mean", "head": "plain-fix", "base": "main", "body": "Fix"})
    return time.perf_counter() - start


STEPS: dict[str, list[float]] = {}


def cloud_run_once(repository: str) -> float:
    from cloud_runs.agents import ScriptedAgent
    from flows.cloud_run import cloud_run

    start = time.perf_counter()
    result = cloud_run(repository=repository, prompt="Fix mean", agent=ScriptedAgent(steps=[CHANGE]),
                       sandbox="docker/bench", github_app="bench", agent_credentials="bench", agent_timeout_seconds=300)
    elapsed = time.perf_counter() - start
    if result.status.value != "pr_opened":
        raise SystemExit(f"cloud_run ended {result.status.value}")
    for step, seconds in result.step_seconds.items():
        STEPS.setdefault(step, []).append(seconds)
    return elapsed


def _jwt(app, forge: Forge) -> str:  # noqa: ANN001
    import jwt

    now = int(forge.now())
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": app.client_id}, app.private_key_pem, algorithm="RS256")


def _api(forge: Forge, method: str, path: str, credential: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{forge.api_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {credential}",
                                              "Accept": "application/vnd.github+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    from prefect.testing.utilities import prefect_test_harness
    from pydantic import SecretStr

    from blocks import AgentCredentials, DockerSandboxBlock, GitHubApp

    with tempfile.TemporaryDirectory() as root, Forge(root) as forge, prefect_test_harness(server_startup_timeout=180):
        app = forge.create_app(slug="cloud-runs-bench", owner="acme")
        forge.install_app(app.id, owner="acme")
        GitHubApp(client_id=app.client_id, slug=app.slug, private_key=SecretStr(app.private_key_pem),
                  api_url=forge.api_url, seconds_between_requests=None, seconds_between_writes=None).save("bench")
        AgentCredentials().save("bench")
        DockerSandboxBlock(network_mode="host", lifetime_seconds=600).save("bench")
        cloud_run_once(new_repository(forge, "warm-up"))  # first flow run pays Prefect's imports and caches
        plain_script(forge, app, new_repository(forge, "warm-up-plain"))
        flow_times, plain_times = [], []
        for index in range(options.runs):  # interleaved, so drift hits both alike
            plain_times.append(plain_script(forge, app, new_repository(forge, f"plain-{index}")))
            flow_times.append(cloud_run_once(new_repository(forge, f"flow-{index}")))
    flow, plain = statistics.median(flow_times), statistics.median(plain_times)
    print(f"plain script (no Prefect, write token in the container): median {plain:.2f} s over {options.runs} runs")
    print(f"cloud_run (Prefect server, scoped tokens, bundle, teardown): median {flow:.2f} s over {options.runs} runs")
    print("  of which, by step (median): " + ", ".join(
        f"{step} {statistics.median(seconds[1:] or seconds):.2f} s" for step, seconds in STEPS.items()))
    print(f"ratio cloud_run / plain: {flow / plain:.2f} (target <= 1.25)")
    # The difference is a fixed cost per run: it does not grow with the agent's work.
    print(f"fixed overhead per run: {flow - plain:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
