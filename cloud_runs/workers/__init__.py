"""Prefect workers of Cloud Runs.

:class:`~cloud_runs.workers.modal.ModalWorker` (work pool type ``modal``) runs
flow runs in Modal sandboxes for self-hosted Prefect servers, which cannot use
Prefect Cloud's ``modal:push`` pools. Importing this package never imports
``modal``.
"""

from __future__ import annotations

from cloud_runs.workers.modal import ModalWorker, ModalWorkerJobConfiguration, ModalWorkerResult, ModalWorkerVariables

__all__ = ["ModalWorker", "ModalWorkerJobConfiguration", "ModalWorkerResult", "ModalWorkerVariables"]
