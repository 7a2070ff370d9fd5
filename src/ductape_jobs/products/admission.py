"""What ``schedule()`` checks against the product before anything is stored.

The product, env and event must exist; a session must verify; and data piping that can already be resolved
must resolve: ``$Session{...}`` in the input (against the verified session) and ``$Input{...}`` in the event's
definition (against the input given). A miss is a ``ValidationError`` naming the path; nothing is written.
The caller's input may read only its session, ``$Now`` and the functions (``CALLER_SOURCES``): a
``$Secret``/``$Variable``/``$Constant`` there is refused, since those belong to the product's own templates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ductape_jobs.errors import ValidationError
from ductape_jobs.limits import check_headers, check_path_params
from ductape_jobs.models import JobEventTypes
from ductape_jobs.piping import (
    CALLER_SOURCES,
    Literal,
    PipingError,
    PipingSyntaxError,
    Scope,
    check,
    has_placeholders,
    parse,
    resolve,
    restrict,
)
from ductape_jobs.piping.errors import located
from ductape_jobs.products.registry import EventRef, Products
from ductape_jobs.redaction import ENV_VAR

if TYPE_CHECKING:  # pydantic's models: loaded by the caller that reads a request
    from ductape_jobs.inputs import JobDefinition, ScheduleRequest, Session


class SessionVerifier(Protocol):
    """What admission needs of sessions (``ductape_jobs.sessions.Sessions``, which sits above products)."""

    def verify(self, session: Session | str | dict[str, Any], *, env: str, product_tag: str) -> dict[str, Any]: ...


def event_definition(products: Products, product_tag: str, ref: EventRef, env: str) -> list[Any]:
    """The definitions (as plain data) an event's run fills in: an action and its app's settings for ``env`` (its
    ``base_url``), a notification and the product's settings for ``env`` (its push and SMS providers' ``url``)."""
    spec = products.get(product_tag)
    if ref.event_type is JobEventTypes.ACTION and ref.owner is not None:
        app = spec.apps[ref.owner]
        settings = [app.envs[env].model_dump()] if env in app.envs else []
        return [app.actions[ref.name].model_dump(), *settings]
    if ref.event_type is JobEventTypes.NOTIFICATION:
        settings = [spec.envs[env].model_dump(exclude={"secrets"})] if env in spec.envs else []
        return [spec.notifications[ref.name].model_dump(), *settings]
    return []  # databases, brokers and functions take the input as it is


def admit(
    products: Products, sessions: SessionVerifier, req: ScheduleRequest, job: JobDefinition
) -> dict[str, Any] | None:
    """Check ``req`` for ``job``; return the verified session data (or ``None``)."""
    ref = products.check_schedule(req.product_tag, req.env, job.event_type, job.event_tag, req.app)
    if req.cache is not None:
        products.check_cache(req.product_tag, req.cache)
    claims = None
    if req.session is not None:
        claims = sessions.verify(req.session, env=req.env, product_tag=req.product_tag)
    if has_placeholders(req.input):  # most inputs hold none: nothing to restrict, check or resolve
        try:
            restrict(req.input, CALLER_SOURCES)  # the caller's input never reads secrets, variables or constants
            check(req.input, Scope(input=req.input, session=claims), sources={"Session"})
            resolve(req.input, Scope(session=claims), sources=CALLER_SOURCES)  # all it reads is known: try it now
        except (PipingError, PipingSyntaxError) as exc:
            raise ValidationError(located("input", exc.at), str(exc)) from None
    if ref is not None and ref.event_type is JobEventTypes.FEATURE:  # the feature's input schema
        from ductape_jobs.products.feature_plan import check_input, plan_feature

        check_input(plan_feature(products.get(req.product_tag), ref.name, products.locate), req.input)
    if ref is not None and ref.event_type is JobEventTypes.ACTION and ref.owner is not None:
        check_headers(req.input.get("headers"), "input.headers")
        path = products.get(req.product_tag).apps[ref.owner].actions[ref.name].path
        check_path_params(_own_text(path), req.input.get("params"), "input.params")
    if ref is not None and ref.event_type is JobEventTypes.NOTIFICATION:  # channels fed by the input
        from ductape_jobs.products.channels import check_input as check_channels

        check_channels(products.get(req.product_tag).notifications[ref.name], req.input)
    for definition in event_definition(products, req.product_tag, ref, req.env) if ref is not None else ():
        try:  # a base_url piping $Input{tenant} was let in without it, and its run failed (a probe)
            check(definition, Scope(input=req.input, session=claims), sources={"Input"})
        except (PipingError, PipingSyntaxError) as exc:
            raise ValidationError("input", f"the event {job.event_tag!r} needs {exc}") from None
    return claims


def _own_text(path: str) -> str:
    """An action's ``path`` as its owner wrote it, each piping placeholder and ``${VAR}`` a NUL: what is left holds
    the ``:key`` and ``{key}`` that the input's ``params`` fill (``$Input{user}`` is not one)."""
    parts = parse(path).parts if "$" in path else (Literal(path),)
    return ENV_VAR.sub("\0", "".join(p.value if isinstance(p, Literal) else "\0" for p in parts))
