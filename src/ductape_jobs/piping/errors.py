"""The two ways piping fails: the text is malformed, or a referenced value is not there."""

from __future__ import annotations

from ductape_jobs.errors import DuctapeError, field_path

#: Where in a nested value the failing text sits: ``("email", "to")`` for ``{"email": {"to": "..."}}``.
Location = tuple[str | int, ...]


def located(root: str, at: Location) -> str:
    """A field path in the one format errors use: ``input.user.email``, ``input.items[0]``."""
    return field_path(root, *at)


def _snippet(text: str, position: int, width: int = 60) -> str:
    if len(text) <= width:
        return repr(text)
    start = max(0, position - width // 3)
    end = min(len(text), start + width)
    return ("..." if start else "") + repr(text[start:end]) + ("..." if end < len(text) else "")


class PipingSyntaxError(DuctapeError, ValueError):
    """Malformed piping text: an unclosed ``{``, an unknown source or function, a wrong number of arguments.

    ``position`` is the 0-based offset into ``text`` where the problem starts; ``at`` is where the text sits
    inside the value being resolved (empty when ``parse`` was called directly).
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        self.at: Location = ()
        super().__init__(f"{reason} at position {position} in {_snippet(text, position)}")

    def __reduce__(self) -> tuple[type[PipingSyntaxError], tuple[str, int, str]]:
        return type(self), (self.text, self.position, self.reason)


class PipingError(DuctapeError, ValueError):
    """A placeholder could not be resolved. The message starts with the placeholder as written.

    ``"$Input{user}{email}: no key 'email' in input.user"``
    """

    def __init__(self, placeholder: str, reason: str) -> None:
        self.placeholder = placeholder
        self.reason = reason
        self.at: Location = ()
        super().__init__(f"{placeholder}: {reason}")

    def __reduce__(self) -> tuple[type[PipingError], tuple[str, str]]:
        return type(self), (self.placeholder, self.reason)


class PipingMissingError(PipingError):
    """The referenced value is not there: a missing key, an index out of range, no session.

    ``$Default(x, fallback)`` falls back on exactly this; a path into a non-container stays a ``PipingError``.
    """
