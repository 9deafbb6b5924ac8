"""Builds the sandbox images: a cached base, and an optional local-agent overlay.

Two layers:

* ``cloud-runs-sandbox-base:<hash>`` from ``sandbox_images/base/Dockerfile``.
  The hash covers the Dockerfile, the build arguments, the agent runner file
  and the extra CA certificates, so an unchanged base is found by its tag and
  reused (never rebuilt).
* When ``LOCAL_AGENT_PACKAGE`` names a checkout of an agent package, the
  overlay ``sandbox_images/local/Dockerfile`` installs it over the base. It is
  rebuilt on every run (the checkout changes between runs).

The result is tagged ``cloud-runs-sandbox:latest`` (the default image of every
provider). Builds go through the Docker engine's API (docker SDK, imported
lazily) with build output streamed to ``log``.

Example:
    >>> from cloud_runs.images import build_images
    >>> built = build_images(extra_ca_certs="/etc/ssl/certs/ca-certificates.crt")
    >>> built.base_built, built.image
    (False, 'cloud-runs-sandbox:latest')

Command line (``scripts/build-images``, ``cloud-runs images build``)::

    python -m cloud_runs.images [--local-agent-package DIR] [--extra-ca-certs FILE]
                                [--build-arg NAME=VALUE] [--no-claude-code] [--no-codex]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_runs.errors import CloudRunsError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import docker

IMAGES_DIR = Path(__file__).resolve().parent.parent / "sandbox_images"
BASE_DOCKERFILE = IMAGES_DIR / "base" / "Dockerfile"
LOCAL_DOCKERFILE = IMAGES_DIR / "local" / "Dockerfile"
RUNNER_FILE = IMAGES_DIR / "base" / "posthog-runner.mjs"
BASE_REPOSITORY = "cloud-runs-sandbox-base"
DEFAULT_IMAGE = "cloud-runs-sandbox:latest"
BUILD_TIMEOUT_SECONDS = 3600
NPM_PACK_TIMEOUT_SECONDS = 300


class ImageBuildError(CloudRunsError):
    """An image could not be built."""


@dataclass(frozen=True)
class BuiltImages:
    """What :func:`build_images` produced.

    Attributes:
        base: Tag of the base image (``cloud-runs-sandbox-base:<hash>``).
        base_id: Its image id.
        base_built: True when the base was built now, False when reused.
        image: The tag the sandboxes use (``cloud-runs-sandbox:latest``).
        image_id: Its image id (the overlay's when one was built).
        overlay_built: True when a local agent package was overlaid.
        seconds: Wall-clock time of the whole build.
    """

    base: str
    base_id: str
    base_built: bool
    image: str
    image_id: str
    overlay_built: bool
    seconds: float

    def summary(self) -> str:
        base = f"{'built' if self.base_built else 'reused'} {self.base} ({self.base_id[7:19]})"
        overlay = "local agent package overlaid" if self.overlay_built else "no overlay"
        return f"base: {base}; {overlay}; {self.image} = {self.image_id[7:19]} ({self.seconds:.1f} s)"


def _ca_bytes(extra_ca_certs: str | Path | None) -> bytes:
    if not extra_ca_certs:
        return b""
    path = Path(extra_ca_certs)
    if not path.is_file():
        raise InputError(f"extra CA file {path} does not exist", hint="pass an existing PEM bundle or leave EXTRA_CA_CERTS empty")
    return path.read_bytes()


def stage_base_context(destination: str | Path, extra_ca_certs: str | Path | None = None) -> Path:
    """Writes the base image's build context into ``destination``.

    The context holds the Dockerfile, ``extra-ca.crt`` (possibly empty) and
    ``runner/`` (the agent runner when ``sandbox_images/base/posthog-runner.mjs``
    exists). Used by :func:`build_images` and by the Modal provider.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BASE_DOCKERFILE, destination / "Dockerfile")
    (destination / "extra-ca.crt").write_bytes(_ca_bytes(extra_ca_certs))
    (destination / "runner").mkdir(exist_ok=True)
    if RUNNER_FILE.is_file():
        shutil.copyfile(RUNNER_FILE, destination / "runner" / RUNNER_FILE.name)
    return destination


def base_tag(build_args: Mapping[str, str] | None = None, extra_ca_certs: str | Path | None = None) -> str:
    """``cloud-runs-sandbox-base:<hash>``: changes when anything the build reads changes."""
    digest = hashlib.sha256()
    digest.update(BASE_DOCKERFILE.read_bytes())
    for key, value in sorted((build_args or {}).items()):
        digest.update(f"\0{key}={value}".encode())
    digest.update(b"\0runner\0" + (RUNNER_FILE.read_bytes() if RUNNER_FILE.is_file() else b""))
    digest.update(b"\0ca\0" + _ca_bytes(extra_ca_certs))
    return f"{BASE_REPOSITORY}:{digest.hexdigest()[:16]}"


def _docker_client(timeout: int) -> docker.DockerClient:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise ImageBuildError(
            f"the Docker engine does not answer ({exc})", hint="start one with scripts/docker-engine start"
        ) from exc
    return client


def _build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    build_args: Mapping[str, str],
    log: Callable[[str], None],
) -> str:
    """Builds ``context`` as ``tag``, streaming the output; returns the image id."""
    from docker.errors import APIError

    image_id = ""
    try:
        for event in client.api.build(
            path=str(context), tag=tag, buildargs=dict(build_args), rm=True, forcerm=True,
            pull=False, decode=True, timeout=BUILD_TIMEOUT_SECONDS,
        ):
            if "error" in event:
                raise ImageBuildError(f"building {tag} failed: {event['error'].strip()}", hint=_network_hint())
            if text := event.get("stream"):
                for line in text.rstrip("\n").splitlines():
                    log(line)
            if "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
    except APIError as exc:
        raise ImageBuildError(f"building {tag} failed: {exc}", hint="check the Dockerfile and the base image exist") from exc
    return image_id or client.images.get(tag).id


def _network_hint() -> str:
    return (
        "if npm could not verify certificates, pass the host CA bundle: "
        "EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt scripts/build-images"
    )


def _pack_local_package(package: Path, destination: Path) -> Path:
    """``npm pack`` of a local checkout (already built), as ``destination/local-agent.tgz``."""
    if not (package / "package.json").is_file():
        raise InputError(
            f"LOCAL_AGENT_PACKAGE={package} has no package.json",
            hint="point LOCAL_AGENT_PACKAGE at the root of an npm package checkout (built beforehand)",
        )
    npm = shutil.which("npm")
    if npm is None:
        raise ImageBuildError("npm is not installed on this machine", hint="install Node.js and npm to pack LOCAL_AGENT_PACKAGE")
    with tempfile.TemporaryDirectory() as packed:
        result = subprocess.run(
            [npm, "pack", "--ignore-scripts", "--pack-destination", packed, str(package)],
            capture_output=True, text=True, timeout=NPM_PACK_TIMEOUT_SECONDS,
        )
        tarballs = list(Path(packed).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise ImageBuildError(
                f"npm pack of {package} failed: {result.stderr.strip()[-2000:]}",
                hint="check the package builds and `npm pack` works in it",
            )
        target = destination / "local-agent.tgz"
        shutil.move(str(tarballs[0]), target)
    return target


def build_images(
    *,
    extra_ca_certs: str | Path | None = None,
    local_agent_package: str | Path | None = None,
    build_args: Mapping[str, str] | None = None,
    image: str = DEFAULT_IMAGE,
    log: Callable[[str], None] = print,
    api_timeout_seconds: int = 600,
) -> BuiltImages:
    """Builds (or reuses) the base image, overlays a local agent package, tags ``image``.

    Args:
        extra_ca_certs: PEM bundle trusted during the npm installs (for
            TLS-inspecting proxies); not kept in the image.
        local_agent_package: Checkout of an agent package to install over the
            published one; rebuilt every time.
        build_args: Base Dockerfile arguments (``INSTALL_CODEX="0"``, versions).
        image: Tag of the result.
        log: Receives every line of build output.

    Raises:
        ImageBuildError: No engine answers, or a build step failed.
        InputError: A path does not exist or is not an npm package.
    """
    started = time.monotonic()
    from docker.errors import ImageNotFound

    args = dict(build_args or {})
    client = _docker_client(api_timeout_seconds)
    base = base_tag(args, extra_ca_certs)
    try:
        base_id = client.images.get(base).id
        base_built = False
        log(f"images: reusing {base}")
    except ImageNotFound:
        log(f"images: building {base} from {BASE_DOCKERFILE}")
        with tempfile.TemporaryDirectory(prefix="cloud-runs-base-") as context:
            base_id = _build(client, stage_base_context(context, extra_ca_certs), base, args, log)
        base_built = True
    overlay_built = False
    if local_agent_package:
        package = Path(local_agent_package).resolve()
        log(f"images: overlaying {package} on {base}")
        with tempfile.TemporaryDirectory(prefix="cloud-runs-local-") as context_dir:
            context = Path(context_dir)
            shutil.copyfile(LOCAL_DOCKERFILE, context / "Dockerfile")
            (context / "extra-ca.crt").write_bytes(_ca_bytes(extra_ca_certs))
            _pack_local_package(package, context)
            image_id = _build(client, context, image, {"BASE": base}, log)
        overlay_built = True
    else:
        repository, tag = _split_tag(image)
        client.api.tag(base_id, repository, tag)
        log(f"images: tagged {base} as {image}")
        image_id = base_id
    return BuiltImages(base, base_id, base_built, image, image_id, overlay_built, time.monotonic() - started)


def _split_tag(image: str) -> tuple[str, str]:
    name, _, last = image.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
    else:
        tag = "latest"
    return (f"{name}/{last}" if name else last), tag


def main(argv: Sequence[str] | None = None) -> int:
    """``cloud-runs images build``: builds the sandbox images, prints what was built or reused."""
    from cloud_runs.settings import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(prog="cloud-runs images build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-agent-package", default=settings.local_agent_package or None,
                        help="checkout of an agent package to overlay (LOCAL_AGENT_PACKAGE)")
    parser.add_argument("--extra-ca-certs", default=settings.extra_ca_certs or None,
                        help="PEM bundle trusted during npm installs (EXTRA_CA_CERTS)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="base Dockerfile argument, e.g. CODEX_VERSION=0.171.0")
    parser.add_argument("--no-claude-code", action="store_true", help="leave Claude Code out")
    parser.add_argument("--no-codex", action="store_true", help="leave Codex out")
    parser.add_argument("--image", default=settings.sandbox_image, help="tag of the result (SANDBOX_IMAGE)")
    options = parser.parse_args(argv)
    build_args = {}
    for item in options.build_arg:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--build-arg {item!r} is not NAME=VALUE")
        build_args[name] = value
    if options.no_claude_code:
        build_args["INSTALL_CLAUDE_CODE"] = "0"
    if options.no_codex:
        build_args["INSTALL_CODEX"] = "0"
    try:
        built = build_images(
            extra_ca_certs=options.extra_ca_certs,
            local_agent_package=options.local_agent_package,
            build_args=build_args,
            image=options.image,
        )
    except CloudRunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"images: {built.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
