"""A local GitHub-compatible server for offline development, the demo and tests.

Real PyGithub and real git talk to it: REST under ``<url>/api/v3``, git smart
HTTP under ``<url>/<owner>/<repo>.git``, like GitHub Enterprise Server.

Example:
    >>> from cloud_runs.forge import Forge
    >>> with Forge() as forge:
    ...     app = forge.create_app(slug="cloud-runs-dev", owner="acme")
    ...     forge.create_repo("acme/widgets", files={"README.md": "# widgets\\n"})
    ...     forge.install_app(app.id, owner="acme")
"""

from __future__ import annotations

from cloud_runs.forge.forge import Forge
from cloud_runs.forge.state import ForgeApp, RequestRecord, TokenRecord

__all__ = ["Forge", "ForgeApp", "RequestRecord", "TokenRecord"]
