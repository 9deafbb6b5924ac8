from __future__ import annotations

import subprocess
import sys

from pydantic import TypeAdapter

from cloud_runs.sandboxes import DockerSandboxSettings, LocalSandboxSettings, ModalSandboxSettings, SandboxSettings


def test_importing_sandboxes_imports_neither_docker_nor_modal():
    code = (
        "import sys, cloud_runs.sandboxes, cloud_runs.images; "
        "cloud_runs.sandboxes.DockerSandboxSettings(); cloud_runs.sandboxes.ModalSandboxSettings(); "
        "print(sorted(m for m in ('docker', 'modal') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_union_picks_the_provider_by_type():
    adapter = TypeAdapter(SandboxSettings)
    assert isinstance(adapter.validate_python({"type": "local"}), LocalSandboxSettings)
    assert isinstance(adapter.validate_python({"type": "docker", "network_mode": "none"}), DockerSandboxSettings)
    modal = adapter.validate_python({"type": "modal", "token_secret": "s3cret-value"})
    assert isinstance(modal, ModalSandboxSettings)
    assert "s3cret-value" not in repr(modal) and "s3cret-value" not in modal.model_dump_json()
