"""The sandbox images: cached base, rebuilt local overlay, agent CLIs that start.

The base is normally built once per CI run by scripts/build-images before
pytest; these tests reuse it (and build it only when it is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cloud_runs.images import build_images, base_tag

pytestmark = pytest.mark.docker

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
EXTRA_CA = os.environ.get("EXTRA_CA_CERTS") or (HOST_CA if Path(HOST_CA).is_file() else None)
OVERLAY_IMAGE = "cloud-runs-sandbox-test:overlay"


def run_in(image: str, script: str) -> str:
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-w", "/opt/cloud-runs", image, "sh", "-c", script],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def default_build():
    return build_images(extra_ca_certs=EXTRA_CA, log=lambda line: None)


def test_every_agent_cli_starts_in_the_default_image(default_build):
    assert default_build.image == "cloud-runs-sandbox:latest"
    assert default_build.base == base_tag({}, EXTRA_CA)
    image = default_build.image
    assert run_in(image, "node -e \"import('@posthog/agent').then(m => console.log(typeof m))\"") == "object"
    assert "Claude Code" in run_in(image, "claude --version")
    assert "codex" in run_in(image, "codex --version")
    assert run_in(image, "id -un; git --version | cut -d' ' -f1-2") == "agent\ngit version"


def test_second_build_reuses_the_base(default_build):
    again = build_images(extra_ca_certs=EXTRA_CA, log=lambda line: None)
    assert not again.base_built
    assert again.base_id == default_build.base_id == again.image_id


def write_package(directory: Path, marker: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text(json.dumps({
        "name": "@posthog/agent", "version": "0.0.0-local", "type": "module",
        "main": "index.js", "exports": {".": "./index.js"},
    }))
    (directory / "index.js").write_text(f"export const marker = {marker!r};\n")
    return directory


def test_local_package_overlay_is_rebuilt_every_time_on_the_reused_base(default_build, tmp_path):
    package = write_package(tmp_path / "agent", "first")
    log: list[str] = []
    try:
        first = build_images(extra_ca_certs=EXTRA_CA, local_agent_package=package, image=OVERLAY_IMAGE, log=log.append)
        assert first.overlay_built and not first.base_built and first.base_id == default_build.base_id
        assert any("reusing" in line for line in log)
        script = "node -e \"import('@posthog/agent').then(m => console.log(m.marker))\""
        assert run_in(OVERLAY_IMAGE, script) == "first"
        write_package(package, "second")
        second = build_images(extra_ca_certs=EXTRA_CA, local_agent_package=package, image=OVERLAY_IMAGE, log=log.append)
        assert second.overlay_built and not second.base_built and second.base_id == first.base_id
        assert second.image_id != first.image_id
        assert run_in(OVERLAY_IMAGE, script) == "second"
        assert "Claude Code" in run_in(OVERLAY_IMAGE, "claude --version")  # the base's CLIs are still there
    finally:
        subprocess.run(["docker", "rmi", "-f", OVERLAY_IMAGE], capture_output=True, timeout=60)
