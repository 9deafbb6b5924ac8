"""GitHub's published REST OpenAPI description, as a response validator for tests.

The description comes from the npm package ``@octokit/openapi`` (MIT), file
``generated/api.github.com.json``. It is fetched once with ``npm pack`` into
``~/.cache/cloud-runs/openapi/`` (override with ``CLOUD_RUNS_OPENAPI_CACHE``)
and never committed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OCTOKIT_OPENAPI_VERSION = "23.0.2"
SPEC_MEMBER = "package/generated/api.github.com.json"
SPEC_URI = "urn:github-openapi"


def cache_dir() -> Path:
    return Path(os.environ.get("CLOUD_RUNS_OPENAPI_CACHE", Path.home() / ".cache" / "cloud-runs" / "openapi"))


def fetch_spec() -> Path:
    """Path of the cached description, downloading it with ``npm pack`` on first use."""
    directory = cache_dir()
    spec = directory / f"api.github.com-{OCTOKIT_OPENAPI_VERSION}.json"
    if spec.exists():
        return spec
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"octokit-openapi-{OCTOKIT_OPENAPI_VERSION}.tgz"
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "npm is needed once to fetch GitHub's OpenAPI description "
                f"(@octokit/openapi@{OCTOKIT_OPENAPI_VERSION}); install nodejs/npm or put the file at {spec}"
            )
        subprocess.run(
            [npm, "pack", f"@octokit/openapi@{OCTOKIT_OPENAPI_VERSION}", "--pack-destination", str(directory)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(SPEC_MEMBER)
        if member is None:
            raise RuntimeError(f"{tarball} has no {SPEC_MEMBER}")
        partial = spec.with_suffix(".partial")
        partial.write_bytes(member.read())
        partial.replace(spec)
    tarball.unlink()  # only the one JSON file is needed
    return spec


def _to_json_schema(node: Any) -> Any:
    """Rewrites OpenAPI 3.0 ``nullable`` into JSON Schema (recursively, in place on a copy)."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _to_json_schema(v) for k, v in node.items() if k not in ("discriminator", "example", "examples")}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


class OpenApi:
    """Validates response bodies against the description's response schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        converted = {"components": _to_json_schema({"schemas": spec["components"]["schemas"]})}
        self.registry = Registry().with_resource(SPEC_URI, Resource.from_contents(converted, DRAFT202012))

    @classmethod
    def load(cls) -> OpenApi:
        return cls(json.loads(fetch_spec().read_text()))

    def response_schema(self, method: str, template: str, status: int) -> dict[str, Any] | None:
        """The JSON schema of ``method template``'s ``status`` response (None when it has no body)."""
        operation = self.spec["paths"][template][method.lower()]
        response = operation["responses"][str(status)]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        return _rebase(_to_json_schema(copy.deepcopy(schema)))

    def validate(self, method: str, template: str, status: int, body: Any) -> None:
        """Raises ``jsonschema.ValidationError`` when ``body`` does not fit the published schema."""
        schema = self.response_schema(method, template, status)
        if schema is None:
            assert body in (None, b"", ""), f"{method} {template} {status} has no body in GitHub's description"
            return
        validator = jsonschema.Draft202012Validator(
            schema, registry=self.registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        error = jsonschema.exceptions.best_match(validator.iter_errors(body))
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path)
            raise AssertionError(f"{method} {template} {status}: at '{path}': {error.message[:500]}")


def _rebase(node: Any) -> Any:
    """Points local ``#/components/...`` references at the registered description."""
    if isinstance(node, list):
        return [_rebase(item) for item in node]
    if isinstance(node, dict):
        return {
            k: (SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#/") else _rebase(v))
            for k, v in node.items()
        }
    return node
