"""Loading and describing the GitHub App's private key.

GitHub hands out the App key as a PKCS#1 PEM file (``BEGIN RSA PRIVATE KEY``);
people also convert it to PKCS#8 (``BEGIN PRIVATE KEY``) or paste it into a
one-line `.env` value with literal ``\\n`` sequences. All of these load. Anything
else fails with a :class:`~cloud_runs.errors.ConfigurationError` that names the
variable and what is wrong with it, and never repeats any part of the value.

Example:
    >>> key = load_private_key(os.environ["GITHUB_APP_PRIVATE_KEY"])  # doctest: +SKIP
    >>> describe_key(key)  # doctest: +SKIP
    'RSA 2048-bit'
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from cloud_runs.errors import ConfigurationError

__all__ = ["describe_key", "key_fingerprint", "load_private_key"]

_DOWNLOAD_HINT = (
    "paste the whole .pem file GitHub generated (App settings -> Private keys -> Generate a private key), "
    "including the BEGIN and END lines; in a one-line .env value write newlines as \\n"
)


def _normalize(text: str) -> str:
    # One-line .env values carry literal "\n"; Windows editors add "\r".
    return text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n").strip().strip("'\"").strip()


def _problem(text: str) -> str | None:
    """Names what is wrong with ``text`` judged by its PEM armour alone, or None."""
    if not text:
        return "is empty"
    if "PUBLIC KEY" in text or text.startswith(("ssh-rsa", "ssh-ed25519", "ecdsa-")):
        return "holds a public key, not the private key"
    if "ENCRYPTED" in text:
        return "is protected by a passphrase, which GitHub App keys never are"
    if "-----BEGIN" not in text:
        return "is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- line)"
    if "PRIVATE KEY-----" not in text.split("-----BEGIN", 1)[1][:40]:
        return "is a PEM block but not a private key"
    if "-----END" not in text:
        return "is truncated (the -----END ... PRIVATE KEY----- line is missing)"
    return None


def load_private_key(text: str | bytes, variable: str = "GITHUB_APP_PRIVATE_KEY") -> RSAPrivateKey:
    """Parses the App's RSA private key.

    Args:
        text: The PEM text, as read from a file or an environment variable.
        variable: Where the value came from, used in error messages.

    Returns:
        The RSA private key.

    Raises:
        ConfigurationError: The value is empty, malformed, truncated, encrypted,
            a public key, or a key of another type (EC, Ed25519). The message
            names ``variable`` and never includes any part of the value.

    Example:
        >>> load_private_key("")
        Traceback (most recent call last):
        ...
        cloud_runs.errors.ConfigurationError: GITHUB_APP_PRIVATE_KEY is empty
          fix: ...
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    pem = _normalize(text or "")
    problem = _problem(pem)
    key = None
    if problem is None:
        # The error is raised outside the except block so that no exception
        # from the parser (whose message could quote input) is chained to it.
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except TypeError:
            problem = "is protected by a passphrase, which GitHub App keys never are"
        except UnsupportedAlgorithm:
            problem = "uses an unsupported key algorithm"
        except ValueError:
            problem = "is malformed or truncated (the PEM body does not decode to a private key)"
    if problem is None and not isinstance(key, RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "") or "non-RSA"
        problem = f"is not an RSA key (it is {kind}); GitHub App keys are RSA"
    if problem is not None:
        raise ConfigurationError(f"{variable} {problem}", hint=_DOWNLOAD_HINT)
    assert isinstance(key, RSAPrivateKey)
    return key


def describe_key(key: RSAPrivateKey) -> str:
    """A short human description of the key, safe to print.

    Example:
        >>> describe_key(key)  # doctest: +SKIP
        'RSA 2048-bit'
    """
    return f"RSA {key.key_size}-bit"


def key_fingerprint(key: RSAPrivateKey) -> str:
    """The key's fingerprint as GitHub shows it on the App's settings page.

    GitHub lists ``SHA256:<base64>`` of the DER-encoded public key next to each
    private key, so this tells which of the App's keys is configured.
    """
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
