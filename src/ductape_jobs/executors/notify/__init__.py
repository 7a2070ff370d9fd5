"""NOTIFICATION transports: email over SMTP, push and SMS through a provider's HTTP API, signed callbacks.

They take resolved values; HTTP ones go through :func:`ductape_jobs.executors.http.perform`, so statuses,
timeouts and retryability are handled as for ACTION requests.
"""

from ductape_jobs.errors import SmtpError
from ductape_jobs.executors.notify.callback import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    post_callback,
    sign,
    verify_signature,
)
from ductape_jobs.executors.notify.providers import ProviderSettings, send_push, send_sms
from ductape_jobs.executors.notify.smtp import SmtpSettings, send_email

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ProviderSettings",
    "SmtpError",
    "SmtpSettings",
    "post_callback",
    "send_email",
    "send_push",
    "send_sms",
    "sign",
    "verify_signature",
]
