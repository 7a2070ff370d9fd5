"""The PostgreSQL store (``pip install 'ductape-jobs[postgres]'``): ``postgresql://...[?schema=name]``."""

from ductape_jobs.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
