"""A notification channel declared ``true`` takes its fields from the run's input, in seed 003's shape:

::

    notifications:
      send_notification: {email: true, push: true, sms: true, callback: {url: "https://..."}}

    input: {email: {to, subject, body},                                      (or text, html, cc, bcc, reply_to)
            push_notification: {title, body, data, device_token},            (or device_tokens, tokens; key push)
            sms: {to, body},
            callback: <any JSON>}                                            the body; the URL stays the product's

The input is data: it is read as it is, never resolved as a template. A callback's URL always comes from the
product (an input naming one would let a caller aim the engine at any address).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ductape_jobs.errors import ValidationError
from ductape_jobs.inputs import invalid, reported
from ductape_jobs.products.model import EmailSpec, NotificationSpec, PushSpec, SmsSpec

#: The input key each channel reads (the first present wins), and the model it must fit.
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "push": ("push_notification", "push"),
    "sms": ("sms",),
}
_MODELS: dict[str, type[BaseModel]] = {"email": EmailSpec, "push": PushSpec, "sms": SmsSpec}


def from_input(channel: str, input: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``channel`` read from ``input``; ``ValidationError`` naming the input path when absent
    or malformed."""
    keys = INPUT_KEYS[channel]
    key = next((k for k in keys if k in input), keys[0])
    given = input.get(key)
    where = f"input.{key}"
    if not isinstance(given, dict):
        raise ValidationError(where, f"the notification's {channel} takes its fields from here: give an object")
    fields = dict(given)
    if channel == "email" and "body" in fields:
        fields.setdefault("text", fields.pop("body"))
    if channel == "push":
        for alias in ("device_token", "device_tokens"):
            if alias in fields:
                fields.setdefault("tokens", fields.pop(alias))
    try:
        parsed: dict[str, Any] = _MODELS[channel].model_validate(fields).model_dump()
    except PydanticValidationError as exc:
        raise invalid(reported(exc), where) from None
    return parsed


def check_input(spec: NotificationSpec, input: dict[str, Any]) -> None:
    """At ``schedule()``: every channel declared ``true`` finds its fields in ``input``."""
    for channel in INPUT_KEYS:
        if getattr(spec, channel) is True:
            from_input(channel, input)


__all__ = ["INPUT_KEYS", "check_input", "from_input"]
