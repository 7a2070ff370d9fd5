"""A product's declaration (the product file): its environments, apps and their actions, notifications,
databases, message brokers, functions, sessions and caches.

Values may hold ``${VAR}`` (read from the process environment when an event runs, so secrets never reach the
job store) and data-piping placeholders (``$Input{...}``, resolved per run).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ductape_jobs.inputs import Built, Concurrency, Free, FreeObject, RateText
from ductape_jobs.limits import MAX_MILLIS, email_header_rule, printable_rule, seconds_rule
from ductape_jobs.products.features import FeatureSpec
from ductape_jobs.redaction import URL_SCHEME
from ductape_jobs.resources import ResourceLimit, parse_rate

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


def _seconds(value: object) -> object:
    rule = seconds_rule(value)
    if rule is not None:
        raise ValueError(rule)
    return value


#: A timeout in seconds: a number (not ``true``, not ``"5"``: a function's timeout's rule, checked before pydantic
#: converts), finite, > 0, and at most what a database takes (``limits.MAX_TIMEOUT_SECONDS``); an infinite one
#: failed every run (``OverflowError``; ``1e300``: PostgreSQL's ``invalid value for parameter``).
Seconds = Annotated[float, BeforeValidator(_seconds)]
#: A TCP port.
Port = Annotated[int, Field(ge=1, le=65_535)]


class _Spec(BaseModel, metaclass=Built):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


# A field that may hold a secret has ``repr=False``: never in a spec's ``repr`` (nor rich's), which a caller prints or
# logs (a security probe: ``repr(products.add(...))`` showed the secrets, the SMTP password, the bearer token and the
# database password).


class Auth(_Spec):
    kind: Literal["none", "bearer", "basic", "header", "query"] = "none"
    token: str | None = Field(default=None, repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    name: str | None = None
    value: str | None = Field(default=None, repr=False)


class ActionSpec(_Spec):
    """An HTTP request of an app: ``path`` may hold ``:key`` segments filled from the input's ``params``."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # credential headers
    query: FreeObject = Field(default_factory=dict, repr=False)  # an api_key
    body: Free = None
    timeout: Seconds = 30.0

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v


class AppEnv(_Spec):
    base_url: str = Field(repr=False)  # its user part or query may hold credentials
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # credential headers
    variables: FreeObject = Field(default_factory=dict)


class AppSpec(_Spec):
    constants: FreeObject = Field(default_factory=dict)
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    envs: dict[str, AppEnv] = Field(default_factory=dict)


class EmailSpec(_Spec):
    to: list[str] | str
    subject: str
    text: str | None = None
    html: str | None = None
    cc: list[str] | str = Field(default_factory=list)
    bcc: list[str] | str = Field(default_factory=list)
    reply_to: str | None = None

    @field_validator("to", "subject", "cc", "bcc", "reply_to")
    @classmethod
    def _one_line(cls, v: list[str] | str | None) -> list[str] | str | None:
        """A header's text: a line break (CR, LF, U+2028 ...) or another control character, written or encoded
        (``=?utf-8?q?=0D=0A...?=``), would start another header. Refused where the input gives the email (seed 003's
        ``email: true``), at ``schedule()``; it failed the run when it was sent (a probe)."""
        for text in [v] if isinstance(v, str) else v or []:
            rule = email_header_rule(text)
            if rule is not None:
                raise ValueError(rule)
        return v


class PushSpec(_Spec):
    tokens: list[str] | str
    title: str
    body: str
    data: FreeObject | str | None = None


class SmsSpec(_Spec):
    to: str
    body: str


class CallbackSpec(_Spec):
    url: str = Field(repr=False)
    body: Free = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)


class NotificationSpec(_Spec):
    """What a notification sends; any of its channels (each may be left out). A channel given as ``true``
    takes its fields from the run's input, in seed 003's shape (``products/channels.py``); a callback's
    ``body`` left out is the input's ``callback``."""

    email: EmailSpec | Literal[True] | None = None
    push: PushSpec | Literal[True] | None = None
    sms: SmsSpec | Literal[True] | None = None
    callback: CallbackSpec | None = None

    @model_validator(mode="after")
    def _some_channel(self) -> NotificationSpec:
        if not (self.email or self.push or self.sms or self.callback):
            raise ValueError("a notification needs at least one of email, push, sms, callback")
        return self


class DatabaseActionSpec(_Spec):
    sql: str = Field(min_length=1, description="one statement with :named parameters")
    timeout: Seconds | None = None


def _connection_urls(envs: dict[str, str]) -> dict[str, str]:
    """Each env's URL has a scheme (``postgresql://``, ``nats://``...) unless the environment gives it (``${VAR}``):
    one mistyped (``postgresql//user:pw@host``) failed every run with an error that no redaction could read the
    password out of. The value is not quoted: it may hold a password."""
    for env, url in envs.items():
        if not URL_SCHEME.match(url) and "${" not in url:
            raise ValueError(f"the URL of env {env!r} does not start with a scheme and :// (such as postgresql://)")
    return envs


ConnectionUrls = Annotated[dict[str, str], AfterValidator(_connection_urls)]


class DatabaseSpec(_Spec):
    envs: ConnectionUrls = Field(default_factory=dict, description="env slug -> connection URL", repr=False)
    actions: dict[str, DatabaseActionSpec] = Field(default_factory=dict)


class BrokerSpec(_Spec):
    envs: ConnectionUrls = Field(default_factory=dict, description="env slug -> broker URL", repr=False)
    topics: dict[str, str] = Field(default_factory=dict, description="topic tag -> topic name")


class SessionSpec(_Spec):
    name: str
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema", description="key -> type name")
    required: list[str] = Field(default_factory=list)
    selector: str = "$Session{id}"
    expiry: int = Field(
        default=3600, gt=0, le=MAX_MILLIS // 1000, description="seconds a token lasts (10 years at most)"
    )


class CacheSpec(_Spec):
    """How long a cached result is reused: ``expiry`` in milliseconds, as the SDK's cache component says it,
    or ``ttl_seconds``. Exactly one."""

    expiry: int | None = Field(default=None, gt=0, le=MAX_MILLIS, description="milliseconds a result is reused")
    ttl_seconds: int | None = Field(default=None, gt=0, le=MAX_MILLIS // 1000, description="the same, in seconds")

    @model_validator(mode="before")
    @classmethod
    def _no_ttl(cls, data: object) -> object:
        if isinstance(data, dict) and "ttl" in data:
            raise ValueError("ttl is ambiguous: give expiry (milliseconds, as the SDK) or ttl_seconds")
        return data

    @model_validator(mode="after")
    def _one(self) -> CacheSpec:
        if (self.expiry is None) == (self.ttl_seconds is None):
            raise ValueError("give exactly one of expiry (milliseconds) or ttl_seconds")
        return self

    @property
    def lifetime(self) -> timedelta:
        if self.expiry is not None:
            return timedelta(milliseconds=self.expiry)
        return timedelta(seconds=self.ttl_seconds or 0)


class ResourceSpec(_Spec):
    """A shared resource of the product (an API, a database): at most ``concurrency`` runs of the jobs that name
    it execute at once, and at most ``rate`` of them start per window (``"10/s"``, ``"600/min"``), counted
    across every worker of the store (``resources.py``). At least one of the two."""

    concurrency: Concurrency | None = Field(default=None, description="runs executing at once")
    rate: RateText = Field(default=None, description="runs started per window: '10/s', '600/min', '5/10s'")

    @model_validator(mode="after")
    def _some_limit(self) -> ResourceSpec:
        if self.concurrency is None and self.rate is None:
            raise ValueError("give concurrency, rate or both")
        return self

    def limit(self, product_tag: str, name: str) -> ResourceLimit:
        rate = None if self.rate is None else parse_rate(self.rate, "rate")
        return ResourceLimit(product_tag, name, self.concurrency, rate)


class HttpProvider(_Spec):
    url: str = Field(repr=False)
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    sender: str | None = None


class SmtpSpec(_Spec):
    host: str
    port: Port = 25
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    sender: str
    use_tls: bool = False
    start_tls: bool | None = None
    timeout: Seconds = 30.0


class EnvSpec(_Spec):
    """Per-environment settings of the product itself."""

    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    session_secret: str | None = Field(default=None, repr=False)
    smtp: SmtpSpec | None = None
    push: HttpProvider | None = None
    sms: HttpProvider | None = None
    callback_secret: str | None = Field(default=None, repr=False)


class ProductSpec(_Spec):
    tag: str = Field(pattern=SLUG)
    name: str | None = None
    envs: dict[str, EnvSpec] = Field(default_factory=dict)
    apps: dict[str, AppSpec] = Field(default_factory=dict)
    notifications: dict[str, NotificationSpec] = Field(default_factory=dict)
    databases: dict[str, DatabaseSpec] = Field(default_factory=dict)
    brokers: dict[str, BrokerSpec] = Field(default_factory=dict)
    functions: dict[str, str] = Field(default_factory=dict, description="function tag -> 'module:function'")
    sessions: dict[str, SessionSpec] = Field(default_factory=dict)
    caches: dict[str, CacheSpec] = Field(default_factory=dict)
    features: dict[str, FeatureSpec] = Field(default_factory=dict, description="feature tag -> its sequences")
    resources: dict[str, ResourceSpec] = Field(default_factory=dict, description="resource tag -> its limits")

    @field_validator("envs", mode="before")
    @classmethod
    def _env_list(cls, v: object) -> object:
        if isinstance(v, list):  # envs: [dev, staging, prd]
            return {str(slug): {} for slug in v}
        return v

    def limits(self) -> list[ResourceLimit]:
        """Its resources as stored limits."""
        return [spec.limit(self.tag, name) for name, spec in self.resources.items()]

    @model_validator(mode="after")
    def _envs_known(self) -> ProductSpec:
        import re

        for slug in self.envs:
            if not re.fullmatch(SLUG, slug):  # match's '$' would take a trailing newline
                raise ValueError(f"env {slug!r} is not a valid slug")
        for name in self.resources:
            if not re.fullmatch(SLUG, name):
                raise ValueError(f"resource {name!r} is not a valid slug")
        for tag in self.features:
            rule = printable_rule(tag)
            if rule is not None:
                raise ValueError(f"feature {tag!r} {rule}")
        known = set(self.envs)
        for kind, owners in (("apps", self.apps), ("databases", self.databases), ("brokers", self.brokers)):
            for tag, owner in owners.items():
                extra = set(owner.envs) - known
                if extra:
                    raise ValueError(f"{kind}.{tag} configures unknown env(s) {sorted(extra)}; declare them in envs")
        return self


class ProductFile(_Spec):
    products: list[ProductSpec] = Field(default_factory=list)
