"""The Modal provider against the installed SDK's real signatures, and the fake that mirrors it.

Live tests (``tests/sandboxes/test_contract.py[modal]``) run only with
MODAL_TOKEN_ID/MODAL_TOKEN_SECRET set.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import modal as real_modal
import pytest

import cloud_runs.sandboxes.modal as provider_module
from cloud_runs.sandboxes import ModalSandboxSettings, RUN_ID_LABEL, SandboxError

SOURCE = Path(provider_module.__file__).read_text()
# Receivers in the provider's source that hold a modal.Sandbox / modal.App instance.
INSTANCE_METHODS = {"exec": "Sandbox.exec", "terminate": "Sandbox.terminate", "poll": "Sandbox.poll",
                    "snapshot_filesystem": "Sandbox.snapshot_filesystem", "get_tags": "Sandbox.get_tags"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def modal_calls():
    """(real qualname, positional count, keyword names) of every SDK call in the provider."""
    for node in ast.walk(ast.parse(SOURCE)):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        keywords = [k.arg for k in node.keywords if k.arg is not None]
        positional = len([a for a in node.args if not isinstance(a, ast.Starred)])
        if name.startswith("modal.") and not name.startswith("modal.exception"):
            yield name.removeprefix("modal."), positional, keywords, False
        elif name in ("self.sandbox.exec", "self.sandbox.terminate", "self.sandbox.poll",
                      "self.sandbox.snapshot_filesystem", "sandbox.get_tags") or name == "?.terminate":
            # "?.terminate": Sandbox.from_id(...).terminate(), a method called on a call's result
            yield INSTANCE_METHODS[name.rsplit(".", 1)[1]], positional, keywords, True


def test_every_modal_call_in_the_provider_binds_to_the_installed_sdk():
    seen = set()
    for qualname, positional, keywords, is_method in modal_calls():
        target = real_modal
        for part in qualname.split("."):
            target = getattr(target, part)
        signature = inspect.signature(target)
        # synchronicity shows classmethods with their `cls`: the call site never passes it.
        bound_first = is_method or next(iter(signature.parameters), "") == "cls"
        args = ["self"] * bound_first + ["arg"] * positional
        signature.bind(*args, **{k: None for k in keywords})  # TypeError names a wrong keyword
        seen.add(qualname)
    assert {"Sandbox.create", "Sandbox.exec", "Sandbox.list", "Sandbox.from_id", "Sandbox.terminate", "App.lookup",
            "Secret.from_dict", "Image.from_registry", "Image.from_dockerfile", "Client.from_credentials"} <= seen


def test_optional_network_keywords_exist_in_the_installed_sdk():
    parameters = inspect.signature(real_modal.Sandbox.create).parameters
    for keyword in ("outbound_cidr_allowlist", "outbound_domain_allowlist", "runtime", "region", "tags", "idle_timeout"):
        assert keyword in parameters


def test_the_fake_rejects_what_the_sdk_rejects(fake_modal_installed):
    fake = fake_modal_installed
    with pytest.raises(TypeError):
        fake.Sandbox.create("sleep", "1", cidr_allow_list=["10.0.0.0/8"])
    with pytest.raises(TypeError):
        fake.App.lookup("x", create_missing=True)
    for name in ("Sandbox.create", "Sandbox.exec", "Sandbox.list", "Sandbox.from_id", "Sandbox.terminate",
                 "Sandbox.set_tags", "Sandbox.snapshot_filesystem", "App.lookup", "Secret.from_dict",
                 "Image.from_registry", "Image.from_dockerfile", "Client.from_credentials"):
        cls, method = name.split(".")
        assert getattr(getattr(fake, cls), method).real_qualname == name


@pytest.fixture
def settings(fake_modal_installed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return ModalSandboxSettings(
        token_id="ak-test", token_secret="as-test", image_source="registry", user=None, lifetime_seconds=120,
        outbound_cidr_allowlist=["10.0.0.0/8"], outbound_domain_allowlist=["api.anthropic.com"], idle_timeout_seconds=60,
    )


def test_create_sends_tags_limits_and_network_policy(settings, fake_modal_installed):
    with settings.create(run_id="modal-create", labels={"cloud-runs.purpose": "t"}) as box:
        create = [args for name, args in fake_modal_installed.calls if name == "Sandbox.create"][-1]
        assert create["args"] == ("sleep", "120")
        assert create["tags"][RUN_ID_LABEL] == "modal-create" and create["tags"]["cloud-runs.purpose"] == "t"
        assert create["timeout"] == 120 and create["cpu"] == 2.0 and create["memory"] == 4096
        assert create["outbound_cidr_allowlist"] == ["10.0.0.0/8"]
        assert box.id.startswith("sb-")


def test_per_process_env_travels_as_a_secret_not_as_plain_env(settings, fake_modal_installed):
    with settings.create(run_id="modal-env") as box:
        lines = []
        box.exec(["sh", "-c", 'echo "$MODEL_KEY"'], env={"MODEL_KEY": "sk-test-123456"}, on_output=lambda s, l: lines.append(l))
        assert lines == ["sk-test-123456"]
        exec_call = [args for name, args in fake_modal_installed.calls if name == "Sandbox.exec"][-1]
        assert "env" not in exec_call and "sk-test-123456" not in repr(exec_call.get("args"))


def test_a_missing_sandbox_user_is_a_clear_failure(settings):
    with settings.create(run_id="modal-user") as box:
        lines = []
        result = box.exec(["true"], user="no-such-user-here", on_output=lambda s, l: lines.append(l))
        assert result.exit_code == 126 and "no-such-user-here does not exist" in lines[0]


def test_snapshot_returns_an_image_id_modal_can_load(settings, fake_modal_installed):
    with settings.create(run_id="modal-snap") as box:
        box.write_file("/workspace/state.txt", b"kept")
        image_id = box.snapshot()
        assert fake_modal_installed.Image.from_id(image_id).object_id == image_id


def test_without_credentials_the_error_says_which_variables(fake_modal_installed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    with pytest.raises(SandboxError, match="MODAL_TOKEN_ID") as caught:
        ModalSandboxSettings().create(run_id="nocreds")
    assert "modal token new" in caught.value.hint


def test_list_finds_nothing_when_the_app_was_never_created(fake_modal_installed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = ModalSandboxSettings(token_id="a", token_secret="b", app_name="never-used")
    assert settings.list_sandboxes() == []
