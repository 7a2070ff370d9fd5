"""Ductape data piping: ``$Input{a}{b}``, ``$Session{user}{id}``, ``$Now``, ``$Concat(...)`` and friends.

Pure code, no I/O::

    template = parse("Hello $Input{name} on $DateAdd($Now, 1, 'days')")   # compiled once, cached
    resolve({"to": "$Input{email}", "n": "$Input{count}"}, Scope(input={...}))
    check(job_input, Scope(input=known), sources={"Input"})               # definition/schedule-time checks
    references(job_input)                                                  # [Reference("Input", ("email",)), ...]

``grammar`` scans text into an AST (``Literal``, ``Reference``, ``Call``); ``resolve`` evaluates it against a
``Scope``; ``functions`` holds the function registry.
"""

from ductape_jobs.piping.errors import PipingError, PipingMissingError, PipingSyntaxError, PipingTooLarge
from ductape_jobs.piping.functions import FUNCTIONS, PipingFunction, format_time, to_text
from ductape_jobs.piping.grammar import SOURCES, Call, Literal, Node, Reference, Template, parse, register_function
from ductape_jobs.piping.resolve import (
    CALLER_SOURCES,
    TEMPLATE_SOURCES,
    Scope,
    check,
    evaluate,
    has_placeholders,
    literal,
    lookup,
    references,
    render,
    resolve,
    restrict,
)

__all__ = [
    "CALLER_SOURCES",
    "FUNCTIONS",
    "SOURCES",
    "TEMPLATE_SOURCES",
    "Call",
    "Literal",
    "Node",
    "PipingError",
    "PipingFunction",
    "PipingMissingError",
    "PipingSyntaxError",
    "PipingTooLarge",
    "Reference",
    "Scope",
    "Template",
    "check",
    "evaluate",
    "format_time",
    "has_placeholders",
    "literal",
    "lookup",
    "parse",
    "references",
    "register_function",
    "render",
    "resolve",
    "restrict",
    "to_text",
]
