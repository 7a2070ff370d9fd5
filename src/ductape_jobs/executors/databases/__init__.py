"""DATABASE_ACTION execution: one named, parameterised SQL statement against PostgreSQL (psycopg 3),
MariaDB/MySQL (PyMySQL) or SQLite (sqlite3), in one transaction per run.

The run's input (``{data, filter}`` and top-level keys) binds to the statement's ``:name`` parameters;
values are always handed to the driver as parameters, never written into the SQL text.
"""

from ductape_jobs.errors import DatabaseError
from ductape_jobs.executors.databases.drivers import driver_for
from ductape_jobs.executors.databases.pool import (
    MAX_ROWS,
    DatabasePool,
    close_default_pool,
    default_pool,
    run_statement,
)
from ductape_jobs.executors.databases.sql import (
    Statement,
    bind_parameters,
    compile_statement,
    parameter_spans,
    to_json_value,
)
from ductape_jobs.redaction import redact_url

__all__ = [
    "MAX_ROWS",
    "DatabaseError",
    "DatabasePool",
    "Statement",
    "bind_parameters",
    "close_default_pool",
    "compile_statement",
    "default_pool",
    "driver_for",
    "parameter_spans",
    "redact_url",
    "run_statement",
    "to_json_value",
]
