from __future__ import annotations

import pytest

from cloud_runs.sandboxes import LocalSandboxSettings, SandboxError


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    box = LocalSandboxSettings(base_dir=str(tmp_path / "state"), lifetime_seconds=120).create(run_id="local-test")
    yield box
    box.destroy()


def run(sandbox, argv, **kwargs):
    lines = []
    result = sandbox.exec(argv, on_output=lambda s, line: lines.append(line), **kwargs)
    assert result.ok, lines
    return lines


def test_sandbox_paths_map_under_the_root_in_argv_env_and_cwd(sandbox, tmp_path):
    sandbox.write_file("/tmp/cloud-runs/prompt.md", b"do it\n")
    assert (sandbox.root / "tmp/cloud-runs/prompt.md").read_bytes() == b"do it\n"
    assert run(sandbox, ["cat", "/tmp/cloud-runs/prompt.md"]) == ["do it"]
    assert run(sandbox, ["sh", "-c", "cd /workspace && pwd && echo $HOME"]) == ["/workspace", "/home/agent"]
    assert run(sandbox, ["sh", "-c", 'cat "$P"'], env={"P": "/tmp/cloud-runs/prompt.md"}) == ["do it"]
    assert run(sandbox, ["sh", "-c", "echo --out=/workspace/x"]) == ["--out=/workspace/x"]


def test_host_paths_outside_the_mapped_prefixes_are_left_alone(sandbox, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host\n")
    assert run(sandbox, ["cat", str(outside)]) == ["host"]
    with pytest.raises(SandboxError, match="outside the local sandbox's mapped paths"):
        sandbox.write_file("/etc/passwd-copy", b"x")


def test_host_environment_does_not_leak_in(sandbox, monkeypatch):
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", "very-secret-key")
    assert run(sandbox, ["sh", "-c", 'echo "[$GITHUB_APP_PRIVATE_KEY]"']) == ["[]"]
