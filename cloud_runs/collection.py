"""What the package registers with Prefect (the ``prefect.collections`` entry point).

Importing it registers the blocks (so ``Block.load`` works in any process) and
the ``modal`` worker type (so ``prefect work-pool create --type modal`` and
``prefect worker start --pool`` find it).
"""

from __future__ import annotations

import blocks  # noqa: F401
from cloud_runs.workers.modal import ModalWorker  # noqa: F401
