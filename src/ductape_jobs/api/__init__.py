"""The HTTP API (``pip install 'ductape-jobs[api]'``): ``create_app(ductape)``, served by ``ductape serve``."""

from ductape_jobs.extras import require_extra

require_extra("api", "ductape_jobs.api")  # one line naming the extra, not FastAPI's ModuleNotFoundError

from ductape_jobs.api.app import create_app  # noqa: E402

__all__ = ["create_app"]
