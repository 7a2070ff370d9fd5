"""A product file's resources, re-read while workers run (issue 14), and while an API server without a worker
does (``Ductape.run_services``): edit a limit, and the processes of every node that reads that file store it
within a few seconds, without a restart.

Only the ``resources`` of the file's products are taken up: the running process's product declarations get
the new ones (jobs saved from it are checked against them) and the store gets their limits (the claim reads
them there, for every worker). Anything else in the file (apps, environments, secrets) still takes a restart.
A resource removed from the file keeps its stored limit. A file that cannot be read or is not valid changes
nothing: ``poll`` raises its ``ValidationError`` (naming ``product_file``) and the last good resources stay.
"""

from __future__ import annotations

import os
from pathlib import Path

from ductape_jobs.products.registry import Products
from ductape_jobs.resources import ResourceLimit


class ResourceWatch:
    """Looks at a product file (its modification time and size) and re-reads it when either changed."""

    def __init__(self, products: Products, path: str | Path) -> None:
        self.products = products
        self.path = Path(path)
        self._seen = _stamp(self.path)

    def poll(self) -> list[ResourceLimit] | None:
        """The limits of every resource the file declares, if it changed since the last look (its products'
        resources are then replaced in ``products``); ``None`` if it did not."""
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return None
        self._seen = stamp  # an invalid file is reported once, not at every look
        fresh = Products.load(self.path)
        limits: list[ResourceLimit] = []
        for tag in fresh.tags():
            spec, new = self.products.find(tag), fresh.get(tag)
            if spec is not None:
                spec.resources = new.resources
            limits += new.limits()
        return limits


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
