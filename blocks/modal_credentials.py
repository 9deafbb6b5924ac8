"""Modal credentials, in the shape Prefect Cloud's Modal push work pools use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    import modal


class ModalCredentials(Block):
    """A Modal API token (modal.com > Settings > API tokens).

    The block type slug and fields match the ``modal-credentials`` block that
    Prefect Cloud creates for ``modal:push`` work pools, so one document serves
    both the push pool and Cloud Runs' sandboxes and worker.

    Example:
        ```python
        from blocks import ModalCredentials

        client = ModalCredentials.load("default").get_client()
        ```
    """

    _block_type_name = "Modal Credentials"
    _block_type_slug = "modal-credentials"
    _logo_url = "https://modal.com/assets/favicon.svg"
    _description = "A Modal token ID and secret."

    token_id: str = Field(description="Modal token ID (ak-...).")
    token_secret: SecretStr = Field(description="Modal token secret (as-...).")

    def get_client(self) -> modal.Client:
        """A Modal client authenticated with this token (imports ``modal`` lazily)."""
        from cloud_runs.sandboxes.modal import ModalSandboxSettings

        return ModalSandboxSettings(**self.as_kwargs()).client()

    def as_kwargs(self) -> dict[str, Any]:
        """The token as keyword arguments of the Modal sandbox settings."""
        return {"token_id": SecretStr(self.token_id), "token_secret": self.token_secret}
