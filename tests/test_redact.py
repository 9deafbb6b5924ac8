from __future__ import annotations

import base64

from cloud_runs.redact import Redactor


def test_known_secret_and_its_git_header_form_are_replaced():
    secret = "sk-ant-api03-abcdef"
    header = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    redactor = Redactor([secret])
    assert redactor(f"key {secret} and Basic {header}") == "key *** and Basic ***"


def test_token_shaped_strings_are_replaced_without_being_registered():
    long_token = "ghs_" + "A1b2." * 104  # 2026-style long installation token with dots
    assert "ghs_" not in Redactor().redact(f"token={long_token} end")
    assert Redactor().redact("github_pat_11ABCDEFG0123456789_xyz") == "***"


def test_pem_private_key_blocks_are_replaced_even_when_truncated(rsa_private_key_pem):
    assert Redactor().redact(f"before {rsa_private_key_pem.strip()} after") == "before *** after"
    truncated = rsa_private_key_pem[: len(rsa_private_key_pem) // 2]
    assert Redactor().redact(f"before {truncated}") == "before ***"


def test_short_values_and_plain_text_are_left_alone():
    redactor = Redactor(["abc", None, ""])
    assert redactor("abc is fine") == "abc is fine"


def test_contains_secret_knows_only_registered_values():
    redactor = Redactor(["sk-live-abcdef123"])
    assert redactor.contains_secret("x=sk-live-abcdef123\n")
    assert not redactor.contains_secret("ghs_" + "a" * 40)  # token-shaped, but not this run's
    assert not Redactor().contains_secret("anything")
