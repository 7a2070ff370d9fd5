"""The HTTP API (``pip install 'ductape-jobs[api]'``): ``create_app(ductape)``, served by ``ductape serve``."""

from ductape_jobs.api.app import create_app

__all__ = ["create_app"]
