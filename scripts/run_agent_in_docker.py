#!/usr/bin/env python3
"""Runs one task in a Docker sandbox from the command line: the cloud_run flow
with the sandbox block ``docker/<block>``.

    .venv/bin/python scripts/run_agent_in_docker.py --repository acme/widgets --prompt "Add a --verbose flag"
    .venv/bin/python scripts/run_agent_in_docker.py --repository acme/widgets --issue 42 --agent codex

Uses the blocks saved by ``cloud-runs blocks init`` (named "default" unless
told otherwise) and the sandbox image built by ``scripts/build-images``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud_runs.cli import main as cloud_runs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", required=True, help="owner/name")
    parser.add_argument("--prompt")
    parser.add_argument("--issue", type=int)
    parser.add_argument("--agent", help="posthog | claude-code | codex | scripted (default: CLOUD_RUNS_AGENT)")
    parser.add_argument("--block", default="default", help="name of the Docker sandbox block")
    parser.add_argument("--github-app", default="default", help="name of the GitHub App block")
    parser.add_argument("--agent-credentials", default="default", help="name of the Agent Credentials block")
    parser.add_argument("--timeout", type=int, default=1800, help="agent timeout in seconds")
    args = parser.parse_args(argv)
    forwarded = ["run", "--repository", args.repository, "--sandbox", f"docker/{args.block}",
                 "--github-app", args.github_app, "--agent-credentials", args.agent_credentials,
                 "--timeout", str(args.timeout)]
    for option, value in (("--prompt", args.prompt), ("--issue", args.issue), ("--agent", args.agent)):
        if value is not None:
            forwarded += [option, str(value)]
    return cloud_runs(forwarded)


if __name__ == "__main__":
    sys.exit(main())
