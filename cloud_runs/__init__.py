"""Cloud Runs: coding agents in isolated sandboxes, published as pull requests."""

__version__ = "0.1.0"
