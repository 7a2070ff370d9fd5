from ductape_jobs.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
