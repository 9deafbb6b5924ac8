"""Loading the App's private key: every accepted form, and a clear error for every bad one."""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cloud_runs.errors import ConfigurationError
from cloud_runs.github.keys import describe_key, key_fingerprint, load_private_key


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL, encryption=None) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


def test_loads_pkcs1_pkcs8_and_one_line_env_values(rsa_key):
    pkcs1 = pem(rsa_key)
    pkcs8 = pem(rsa_key, serialization.PrivateFormat.PKCS8)
    assert pkcs1.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert pkcs8.startswith("-----BEGIN PRIVATE KEY-----")
    expected = rsa_key.private_numbers()
    for text in (pkcs1, pkcs8, pkcs1.replace("\n", "\\n"), f'"{pkcs8.strip()}"', pkcs1.replace("\n", "\r\n")):
        assert load_private_key(text).private_numbers() == expected
    assert load_private_key(pkcs1.encode()).private_numbers() == expected


def test_describe_and_fingerprint_match_openssl(rsa_key, tmp_path):
    assert describe_key(rsa_key) == "RSA 2048-bit"
    # GitHub's documented check: openssl rsa -pubout -outform DER | openssl sha256 -binary | base64
    path = tmp_path / "key.pem"
    path.write_text(pem(rsa_key))
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"], capture_output=True, check=True, timeout=30
    ).stdout
    assert key_fingerprint(rsa_key) == "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _bad_inputs(rsa_key) -> dict[str, tuple[str, str]]:
    good = pem(rsa_key)
    lines = good.splitlines()
    body = lines[1:-1]
    corrupted = "\n".join([lines[0], *body[:5], "!!!!" + body[5][4:], *body[6:], lines[-1]])
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    ssh_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    ec_key = pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8)
    ed_key = pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)
    encrypted8 = pem(rsa_key, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    encrypted1 = pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL,
                     serialization.BestAvailableEncryption(b"pw"))
    return {
        "empty": ("", "is empty"),
        "blank": ("  \n ", "is empty"),
        "not pem": ("MIIEpAIBAAKCAQEA" + body[3], "not a PEM private key"),
        "truncated (no END)": ("\n".join(lines[:12]), "truncated"),
        "truncated body": ("\n".join([*lines[:8], lines[-1]]), "malformed or truncated"),
        "corrupted body": (corrupted, "malformed"),
        "public key": (public, "public key"),
        "ssh public key": (ssh_public, "public key"),
        "EC key": (ec_key, "(it is EC)"),
        "Ed25519 key": (ed_key, "(it is Ed25519)"),
        "passphrase pkcs8": (encrypted8, "passphrase"),
        "passphrase pkcs1": (encrypted1, "passphrase"),
        "certificate": ("-----BEGIN CERTIFICATE-----\n" + "\n".join(body[:4]) + "\n-----END CERTIFICATE-----",
                        "not a private key"),
    }


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize(
    "case",
    ["empty", "blank", "not pem", "truncated (no END)", "truncated body", "corrupted body", "public key",
     "ssh public key", "EC key", "Ed25519 key", "passphrase pkcs8", "passphrase pkcs1", "certificate"],
)
def test_bad_keys_give_a_clear_error_without_key_material(rsa_key, case):
    text, expected = _bad_inputs(rsa_key)[case]
    with pytest.raises(ConfigurationError) as caught:
        load_private_key(text, "MY_APP_KEY")
    error = caught.value
    assert str(error).startswith("MY_APP_KEY ")
    assert expected in error.message
    assert error.hint
    # No 8-character window of any base64 line of the input appears anywhere in the error chain.
    fragments = {
        line[i : i + 8]
        for line in text.splitlines()
        if not line.startswith("-----") and ":" not in line
        for i in range(0, max(len(line) - 8, 0), 4)
    }
    for exc in _chain(error):
        rendered = str(exc) + repr(exc.args)
        assert not [f for f in fragments if f in rendered], case
    assert error.__cause__ is None and error.__context__ is None
