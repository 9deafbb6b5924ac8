"""Cloud Runs: coding agents in isolated sandboxes, their work published as pull requests.

Each subcommand imports what it needs when it runs, so ``cloud-runs --help``
stays fast and never imports Prefect, Docker or Modal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cloud_runs.errors import CloudRunsError


def _demo(args: argparse.Namespace) -> int:
    from cloud_runs.demo import main

    return main(args)


def _run(args: argparse.Namespace) -> int:
    from cloud_runs.agents import agent_settings_from_name
    from cloud_runs.runs import RunRequest
    from cloud_runs.settings import load_settings

    settings = load_settings()
    RunRequest.validated(repository=args.repository, prompt=args.prompt, issue=args.issue)  # fail fast, before Prefect starts
    from flows.cloud_run import cloud_run

    sandbox = args.sandbox or f"{settings.sandbox_provider}/default"
    result = cloud_run(repository=args.repository, prompt=args.prompt, issue=args.issue,
                       agent=agent_settings_from_name(args.agent or settings.agent), sandbox=sandbox,
                       github_app=args.github_app, agent_credentials=args.agent_credentials,
                       base_branch=args.base_branch, draft=args.draft, agent_timeout_seconds=args.timeout)
    print(result.model_dump_json(indent=2))
    return 0 if result.status.value in ("pr_opened", "pr_updated", "no_changes") else 1


def _blocks_init(args: argparse.Namespace) -> int:
    from blocks.registration import init_blocks
    from cloud_runs.settings import load_settings

    for line in init_blocks(load_settings(), args.name):
        print(f"saved {line}")
    return 0


def _images_build(args: argparse.Namespace) -> int:
    from cloud_runs.images import main

    return main(args.rest)


def _app_create(args: argparse.Namespace) -> int:
    from cloud_runs.setup.app_create import main

    return main(args)


def _doctor(args: argparse.Namespace) -> int:
    from cloud_runs.setup.doctor import main

    return main(args)


def _deploy(args: argparse.Namespace) -> int:
    from cloud_runs.deploy import run

    return run(args)


def _forge_serve(args: argparse.Namespace) -> int:
    from cloud_runs.forge.cli import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-runs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole path offline: local forge, scripted agent, a real PR")
    demo.add_argument("--sandbox", choices=("local", "docker"), help="default: docker when it is usable, else local")
    demo.add_argument("--keep", action="store_true", help="keep the forge serving after the run, to browse the PR")
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="run one task against GitHub with the saved blocks")
    run.add_argument("--repository", required=True, help="owner/name")
    task = run.add_argument_group("task (one or both)")
    task.add_argument("--prompt")
    task.add_argument("--issue", type=int)
    run.add_argument("--agent", help="posthog | claude-code | codex | scripted (default: CLOUD_RUNS_AGENT)")
    run.add_argument("--sandbox", help="provider/block-name (default: SANDBOX_PROVIDER/default)")
    run.add_argument("--github-app", default="default", help="GitHub App block name")
    run.add_argument("--agent-credentials", default="default", help="Agent Credentials block name")
    run.add_argument("--base-branch")
    run.add_argument("--draft", action="store_true")
    run.add_argument("--timeout", type=int, default=1800, help="agent timeout in seconds")
    run.set_defaults(handler=_run)

    from cloud_runs import deploy
    from cloud_runs.setup import app_create, doctor

    app = commands.add_parser("app", help="the GitHub App").add_subparsers(dest="app_command", required=True)
    create = app.add_parser("create", help="register the GitHub App from a manifest; write .env and the block")
    app_create.add_arguments(create)
    create.set_defaults(handler=_app_create)

    check = commands.add_parser("doctor", help="check the set-up: each problem with its fix")
    doctor.add_arguments(check)
    check.set_defaults(handler=_doctor)

    blocks = commands.add_parser("blocks", help="Prefect blocks").add_subparsers(dest="blocks_command", required=True)
    init = blocks.add_parser("init", help="create or update the blocks from .env / the environment")
    init.add_argument("--name", default="default", help="name of every block document")
    init.set_defaults(handler=_blocks_init)

    deploy.build_parser(commands.add_parser("deploy", help="create the work pools, then deploy prefect.yaml"))
    commands.choices["deploy"].set_defaults(handler=_deploy)

    images = commands.add_parser("images", help="sandbox images").add_subparsers(dest="images_command", required=True)
    build = images.add_parser("build", help="build the sandbox images (base reused when unchanged)")
    build.add_argument("rest", nargs=argparse.REMAINDER, help="options of the image builder (see --help)")
    build.set_defaults(handler=_images_build)

    forge = commands.add_parser("forge", help="the local GitHub-compatible server").add_subparsers(
        dest="forge_command", required=True
    )
    serve = forge.add_parser("serve", help="serve a local forge until interrupted")
    serve.add_argument("--root", help="directory for repositories and state (default: a temporary one)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.set_defaults(handler=_forge_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Without PREFECT_API_URL, Prefect starts an embedded server: a cold first
    # start takes about 26 s here, over its 20 s default; nothing answers telemetry.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        return int(args.handler(args) or 0)
    except CloudRunsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
