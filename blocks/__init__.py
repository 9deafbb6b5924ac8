"""Prefect blocks of Cloud Runs, registered through the ``prefect.collections`` entry point."""
