"""Getting set up: ``cloud-runs app create`` (GitHub App from a manifest) and ``cloud-runs doctor``.

Modules by concern:

* :mod:`~cloud_runs.setup.manifest` — the App manifest and the code exchange.
* :mod:`~cloud_runs.setup.envfile` — writing `.env` without losing what is there.
* :mod:`~cloud_runs.setup.app_create` — the local page and the command.
* :mod:`~cloud_runs.setup.doctor` — the checklist.
"""

from __future__ import annotations
