from __future__ import annotations

import json
import subprocess

import pytest

from cloud_runs.sandboxes import DockerSandboxSettings, SandboxError
from tests.sandboxes.conftest import SANDBOX_IMAGE

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def development(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLOUD_RUNS_ENVIRONMENT", raising=False)


def inspect(container_id: str) -> dict:
    out = subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)[0]


def test_container_is_hardened_as_docker_reports_it():
    settings = DockerSandboxSettings(image=SANDBOX_IMAGE, cpu=1.5, memory_mb=768, pids_limit=256, lifetime_seconds=120)
    with settings.create(run_id="hardening") as box:
        info = inspect(box.id)
        host = info["HostConfig"]
        assert info["Config"]["User"] == "agent"
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["PidsLimit"] == 256
        assert host["Memory"] == 768 * 1024 * 1024
        assert host["NanoCpus"] == 1_500_000_000
        assert host["Privileged"] is False
        assert info["Mounts"] == [] and not host.get("Binds")
        assert "docker.sock" not in json.dumps(info)
        assert host["NetworkMode"] == "bridge"
        assert host["AutoRemove"] is True and host["Init"] is True
        assert info["Config"]["Labels"]["cloud-runs.run-id"] == "hardening"
        lines = []
        box.exec(["sh", "-c", "id -u; grep CapEff /proc/self/status"], on_output=lambda s, l: lines.append(l))
        assert lines[0] == "1000" and lines[1].split()[1] == "0000000000000000"


def test_network_none_and_read_only_root():
    settings = DockerSandboxSettings(image=SANDBOX_IMAGE, network_mode="none", read_only_root=True, lifetime_seconds=120)
    with settings.create(run_id="readonly") as box:
        assert inspect(box.id)["HostConfig"]["ReadonlyRootfs"] is True
        box.write_file("/workspace/f.bin", bytes(range(256)))
        assert box.read_file("/workspace/f.bin") == bytes(range(256))
        assert box.exec(["touch", "/opt/cloud-runs/x"]).exit_code != 0
        assert box.exec(["sh", "-c", "cat /sys/class/net/*/operstate | grep -v unknown | grep -q up"]).exit_code != 0


def test_missing_image_names_the_build_command():
    settings = DockerSandboxSettings(image="cloud-runs-does-not-exist:nope")
    with pytest.raises(SandboxError, match="does not exist") as caught:
        settings.create(run_id="noimage")
    assert "scripts/build-images" in caught.value.hint


def test_unreachable_engine_names_the_start_command(tmp_path):
    settings = DockerSandboxSettings(docker_host=f"unix://{tmp_path}/no-docker.sock", api_timeout_seconds=5)
    with pytest.raises(SandboxError, match="does not answer") as caught:
        settings.create(run_id="noengine")
    assert "scripts/docker-engine start" in caught.value.hint


def test_root_user_is_refused_before_anything_starts():
    with pytest.raises(SandboxError, match="never runs as root"):
        DockerSandboxSettings(image=SANDBOX_IMAGE, user="root").create(run_id="rooted")
