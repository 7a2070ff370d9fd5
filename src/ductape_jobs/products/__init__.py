"""Products, their environments and the events they define (the product file)."""

from ductape_jobs.products.model import ProductFile, ProductSpec
from ductape_jobs.products.registry import EventRef, Products, expand

__all__ = ["EventRef", "ProductFile", "ProductSpec", "Products", "expand"]
