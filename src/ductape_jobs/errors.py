"""The whole exception tree of ductape-jobs.

::

    DuctapeError
     +-- ValidationError (also ValueError)   bad input; names the field and the rule; nothing was written
     +-- NotFoundError   (also LookupError)  no job, schedule or run with that tag or id
     +-- ConflictError                        the store refused the change (duplicate tag, wrong state)
     |    +-- StaleJobError                    a job definition changed since it was read (schedule() reads again)
     +-- StoreError                           the store failed (driver errors are translated into this)
     +-- RunningLoopError (also RuntimeError) a blocking call inside a running event loop: use AsyncDuctape
     +-- ExecutionError                       raised inside a run: the event failed
          +-- ExecutorNotFoundError            no executor / no registered function for the event
          +-- RunTimeoutError                  the run passed its `timeout`
          +-- ResultError                      the event returned what cannot be stored (not JSON)
"""

from __future__ import annotations


def field_path(root: str, *keys: str | int) -> str:
    """A field's path in the one format every error uses: ``input.user.email``, ``sequence[0].events[1]``."""
    path = root
    for key in keys:
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
    return path


class DuctapeError(Exception):
    """Root of every error ductape-jobs raises on purpose."""


class ValidationError(DuctapeError, ValueError):
    """Input broke a rule. ``field`` names the input field, ``rule`` the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": str(self)}


class NotFoundError(DuctapeError, LookupError):
    """No record with the given tag or id."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(DuctapeError):
    """The change conflicts with what is stored (duplicate tag, a run in the wrong phase)."""


class StaleJobError(ConflictError):
    """The job definition a write was planned from changed meanwhile (its ``updated_at`` moved)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        super().__init__(f"job {tag!r} changed while it was being scheduled")


class StoreError(DuctapeError):
    """The store failed; the driver's exception is the ``__cause__``."""


class RunningLoopError(DuctapeError, RuntimeError):
    """A blocking call (``drain()``, ``feature.run``, ...) was made from inside a running event loop."""


class ExecutionError(DuctapeError):
    """An event failed while running. ``retryable`` says whether another attempt can help."""

    retryable: bool = True


class ExecutorNotFoundError(ExecutionError):
    """No executor or registered function for the event; retrying on this worker cannot help."""

    retryable = False


class RunTimeoutError(ExecutionError):
    """The run went past its ``timeout``."""


class ResultError(ExecutionError):
    """The event returned a value that cannot be stored as its output (a FUNCTION result that is not JSON);
    running it again would return the same, so it is not retried."""

    retryable = False
