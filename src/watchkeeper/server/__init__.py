"""The watchkeeper server: ingest from many processes, queries for the dashboard and the CLI, Prometheus
exposition. FastAPI over the same Store the embedded mode uses; the SDK reaches it over HTTP only."""

from watchkeeper.server.app import create_app

__all__ = ["create_app"]
