"""Products, their environments and the events they define (the product file). The models of a product file
(pydantic) are loaded when first named (``ProductFile``, ``ProductSpec``) or a product is added: a worker with no
product loads none."""

from typing import TYPE_CHECKING, Any

from ductape_jobs.products.registry import EventRef, Products, expand

if TYPE_CHECKING:
    from ductape_jobs.products.model import ProductFile, ProductSpec
else:

    def __getattr__(name: str) -> Any:
        if name in ("ProductFile", "ProductSpec"):
            from ductape_jobs.products import model

            return getattr(model, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EventRef", "ProductFile", "ProductSpec", "Products", "expand"]
