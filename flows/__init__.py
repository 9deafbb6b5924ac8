"""Prefect flows of Cloud Runs."""
