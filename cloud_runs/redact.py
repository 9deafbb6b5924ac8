"""Redaction of secret values from everything that leaves the process.

A :class:`Redactor` knows every secret value a run holds (model keys, GitHub
tokens, the App's private key) and replaces each occurrence with a marker. It
also replaces anything shaped like a GitHub token or a PEM private key, so a
secret we were never told about (a token the agent minted itself) is still
caught.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable

REDACTED = "***"

# GitHub token prefixes (classic, fine-grained, installation, user-to-server,
# refresh, OAuth). Installation tokens can be long and contain dots (2026 format).
_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_.\-]{16,}")
_PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# Shortest value worth redacting by literal match: shorter strings would mangle
# ordinary text and cannot be credentials anyway.
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces known secret values and secret-shaped strings in text.

    Thread-safe; secrets can be added while a run is streaming output.

    Example:
        >>> r = Redactor(["sk-ant-123456"])
        >>> r.redact("key=sk-ant-123456")
        'key=***'
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Registers a secret value (and its forms as they appear in git auth headers)."""
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            return
        forms = {secret, secret.replace("\n", "\\n")}
        # git's extraheader carries the token base64-encoded inside Basic auth.
        forms.add(base64.b64encode(f"x-access-token:{secret}".encode()).decode())
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def contains_secret(self, text: str) -> bool:
        """True when ``text`` holds one of the registered secret values.

        Only registered values count: a repository may legitimately hold
        token-shaped test data or a test key, but never this run's secrets.
        """
        pattern = self._pattern
        return bool(text) and pattern is not None and pattern.search(text) is not None

    def redact(self, text: str) -> str:
        """Returns ``text`` with every secret replaced by ``***``."""
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _PEM_BLOCK.sub(REDACTED, text)
        return _GITHUB_TOKEN.sub(REDACTED, text)

    def __call__(self, text: str) -> str:
        return self.redact(text)
