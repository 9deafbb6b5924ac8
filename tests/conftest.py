"""Shared fixtures.

Docker-backed tests skip with a reason when no engine answers on a developer's
machine; in CI (``CI=true``) that skip is turned into a failure, so a missing
engine can never hide a missing feature.
"""

from __future__ import annotations

import os
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Requires a Docker engine: skip locally, fail in CI."""
    if not _docker_answers():
        message = "no Docker engine answers (start one with scripts/docker-engine start)"
        if IN_CI:
            pytest.fail(f"{message}; CI must not skip Docker tests")
        pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker"):
            item.fixturenames.insert(0, "docker_engine")


@pytest.fixture(scope="session")
def rsa_private_key_pem() -> str:
    """A PKCS#1 PEM private key made for this test session (no key is ever committed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (a temporary server with its own database) for the session.

    Yields the API URL, for subprocesses that must reach the same server.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()
