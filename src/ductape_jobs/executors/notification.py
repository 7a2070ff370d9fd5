"""NOTIFICATION events: email (SMTP), push and SMS (a provider's HTTP API), and a signed callback webhook."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import getaddresses
from typing import Any

import httpx

from ductape_jobs.errors import ExecutorNotFoundError, NotificationInputError, ValidationError
from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.http import HttpAuth
from ductape_jobs.executors.lookup import definition, locate, reads_data, url_of
from ductape_jobs.executors.notify import (
    ProviderSettings,
    SmtpSettings,
    post_callback,
    send_email,
    send_push,
    send_sms,
)
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.products import Products
from ductape_jobs.products.channels import INPUT_KEYS, from_input
from ductape_jobs.products.model import ProductSpec
from ductape_jobs.redaction import Secrets, smtp_secrets
from ductape_jobs.targets import TargetPolicy


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _addresses(value: Any, field: str, piped: bool) -> list[str]:
    """An email's ``to``, ``cc`` or ``bcc``. Where its template pipes a caller's data (``piped``: ``$Input``,
    ``$Session``, ``$Sequence``), a text is one address (a display name may hold a comma, quoted) and a list one an
    item: ``to: "$Input{to}"`` given ``"me@example.com, anyone@example.org"`` made the product mail whoever the caller
    named (a security probe). The owner's own text (``"ops@example.com, oncall@example.com"``) and a channel the
    input gives whole (``email: true``) are sent to every address they hold."""
    entries = _list(value)
    for i, entry in enumerate(entries if piped else ()):
        found = [address for _, address in getaddresses([entry]) if address]
        if len(found) != 1:
            where = field if isinstance(value, str) else f"{field}[{i}]"
            raise NotificationInputError(
                f"email.{where} holds {len(found)} addresses, not one: give several as a list, one address an item"
            )
    return entries


def _provider(settings: dict[str, Any] | None, kind: str, env: str) -> ProviderSettings:
    if not settings:
        raise ExecutorNotFoundError(f"env {env!r} has no {kind} provider configured")
    auth = settings.get("auth")
    return ProviderSettings(
        url=settings["url"],
        auth=HttpAuth(**auth) if auth else None,
        headers=settings.get("headers") or {},
    )


def _resolved(
    product: ProductSpec, name: str, env_name: str, ctx: RunContext
) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """The notification ``name`` and the env's settings, ``${VAR}`` read and piping resolved; in the URLs it sends to
    (a callback's, a push or SMS provider's) a piped value is one segment or a host's labels (``url_of``). Third:
    the channels (``callback``, ``push``, ``sms``) whose URL's host the caller chose (``lookup.Target``), and
    ``smtp`` when the SMTP host reads the caller's data."""
    named, at = product.notifications[name], f"products.{product.tag}.notifications.{name}"
    spec = definition(named.model_dump(exclude={"callback": {"url"}}), ctx, at)
    settings, at_env = product.envs[env_name], f"products.{product.tag}.envs.{env_name}"
    env = definition(settings.model_dump(exclude={"secrets": True, "push": {"url"}, "sms": {"url"}}), ctx, at_env)
    chosen: set[str] = set()
    if named.callback is not None:
        target = url_of(named.callback.url, ctx, f"{at}.callback.url")
        spec["callback"]["url"] = target.url
        chosen |= {"callback"} if target.chosen else set()
    for channel, given in (("push", settings.push), ("sms", settings.sms)):
        if given is not None:
            target = url_of(given.url, ctx, f"{at_env}.{channel}.url")
            env[channel]["url"] = target.url
            chosen |= {channel} if target.chosen else set()
    if settings.smtp is not None and reads_data(settings.smtp.host):
        chosen.add("smtp")
    return spec, env, chosen


class NotificationExecutor:
    event_type = JobEventTypes.NOTIFICATION

    def __init__(self, products: Products, policy: Callable[[], TargetPolicy] = TargetPolicy) -> None:
        self.products = products
        self.policy = policy  # where a URL whose host the caller chose may go (``lookup.Target``)
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient()
        return self._client

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        product, ref = locate(self.products, run, ctx)
        spec, env, chosen = _resolved(product, ref.name, run.env, ctx)
        policy = self.policy() if chosen else None
        for channel in INPUT_KEYS:  # declared `true`: the fields come from the input, as data
            if spec.get(channel) is True:
                try:
                    spec[channel] = from_input(channel, ctx.input)
                except ValidationError as exc:
                    raise NotificationInputError(str(exc)) from None
        if spec.get("callback") and spec["callback"].get("body") is None and "callback" in ctx.input:
            spec["callback"]["body"] = ctx.input["callback"]
        sent: dict[str, Any] = {}
        if spec.get("email") and "smtp" in chosen:  # the login would go to the host the caller names
            raise NotificationInputError(
                f"products.{product.tag}.envs.{run.env}.smtp.host reads the caller's data ($Input, $Session, "
                "$Sequence): the SMTP login would go to the host the caller names; the host must be the owner's"
            )
        if spec.get("email"):
            written = product.notifications[ref.name].email
            piped = {f for f in ("to", "cc", "bcc") if written is not True and reads_data(getattr(written, f, None))}
            sent["email"] = await self._email(spec["email"], env, run.env, self.products.secrets.of(product.tag), piped)
        if spec.get("push"):
            push = spec["push"]
            sent["push"] = await send_push(
                self.client(),
                _provider(env.get("push"), "push", run.env),
                tokens=_list(push["tokens"]),
                title=push["title"],
                body=push["body"],
                data=push.get("data") if isinstance(push.get("data"), dict) else None,
                secrets=self.products.secrets.of(product.tag),
                guard=policy if "push" in chosen else None,
            )
        if spec.get("sms"):
            provider = _provider(env.get("sms"), "sms", run.env)
            sms = spec["sms"]
            sent["sms"] = await send_sms(
                self.client(),
                provider,
                to=str(sms["to"]),
                body=sms["body"],
                sender=(env.get("sms") or {}).get("sender"),
                secrets=self.products.secrets.of(product.tag),
                guard=policy if "sms" in chosen else None,
            )
        if spec.get("callback"):
            callback = spec["callback"]
            secret = env.get("callback_secret")
            if not secret:
                raise ExecutorNotFoundError(f"env {run.env!r} has no callback_secret to sign callbacks with")
            sent["callback"] = await post_callback(
                self.client(),
                callback["url"],
                callback.get("body"),
                secret=secret,
                headers=callback.get("headers"),
                secrets=self.products.secrets.of(product.tag),
                guard=policy if "callback" in chosen else None,
            )
        return sent

    async def _email(
        self, email: dict[str, Any], env: dict[str, Any], env_name: str, secrets: Secrets, piped: set[str]
    ) -> dict[str, Any]:
        smtp = env.get("smtp")
        if not smtp:
            raise ExecutorNotFoundError(f"env {env_name!r} has no smtp settings to send email with")
        settings = SmtpSettings(**smtp)
        secrets.learn(smtp_secrets({"username": settings.username, "password": settings.password}))  # as read now
        return await send_email(
            settings,
            to=_addresses(email["to"], "to", "to" in piped),
            subject=email["subject"],
            text=email.get("text"),
            html=email.get("html"),
            cc=_addresses(email.get("cc"), "cc", "cc" in piped),
            bcc=_addresses(email.get("bcc"), "bcc", "bcc" in piped),
            reply_to=email.get("reply_to"),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
