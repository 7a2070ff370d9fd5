"""One way to do each thing: one exception tree, one URL redaction, one exception-to-text, one page and enum
check, one retry helper on ``Backoff``, one event-type parser."""

from __future__ import annotations

import ast
import asyncio
import inspect
import pickle
from datetime import timedelta
from pathlib import Path

import pytest

import ductape_jobs
from ductape_jobs import errors
from ductape_jobs.errors import DuctapeError, HttpError, SmtpError, ValidationError, describe
from ductape_jobs.limits import MAX_OFFSET, MAX_PAGE, check_enum, check_page
from ductape_jobs.models import FeatureEventTypes, JobEventTypes, RunPhase
from ductape_jobs.redaction import Secrets, connection_secrets, mask_connection_url, redact_url
from ductape_jobs.timing.backoff import Backoff, retry, retry_async

PACKAGE = Path(ductape_jobs.__file__).parent


def _exception_classes_outside_errors() -> list[str]:
    """Public classes outside errors.py whose bases name an exception (``...Error``, ``Exception``, ...)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue  # a private control-flow signal (``_LeaseLost``) never leaves its module
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.endswith(("Error", "Exception", "Failure", "Failed", "Refused", "Rejected")) for b in bases):
                found.append(f"{path.relative_to(PACKAGE)}: {node.name}({', '.join(bases)})")
    return found


def test_every_exception_lives_in_errors_py_under_the_one_root() -> None:
    assert _exception_classes_outside_errors() == []
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]
    assert len(classes) >= 20
    assert all(issubclass(c, DuctapeError) for c in classes), [c for c in classes if not issubclass(c, DuctapeError)]
    for cls in classes:  # the tree drawn in the docstring names every class
        assert cls.__name__ in (errors.__doc__ or ""), cls.__name__


def test_the_old_import_paths_of_public_errors_still_work() -> None:
    from ductape_jobs.executors.databases import DatabaseError
    from ductape_jobs.executors.http import HttpError as FromHttp
    from ductape_jobs.executors.notify import SmtpError as FromNotify
    from ductape_jobs.extras import MissingExtraError
    from ductape_jobs.piping import PipingError

    assert (FromHttp, FromNotify) == (HttpError, SmtpError)
    assert DatabaseError is errors.DatabaseError and MissingExtraError is errors.MissingExtraError
    assert PipingError is errors.PipingError


def test_execution_errors_keep_retryable_and_details_through_pickle() -> None:
    """Runs may fail in a worker process: the error crosses a pickle with its fields."""
    err = pickle.loads(pickle.dumps(HttpError("POST x: 503", True, {"status": 503})))
    assert (type(err), str(err), err.retryable, err.details) == (HttpError, "POST x: 503", True, {"status": 503})
    rejected = pickle.loads(pickle.dumps(errors.FeatureRejected("no such feature")))
    assert rejected.retryable is False and str(rejected) == "no such feature"
    assert errors.NotificationInputError("x").retryable is False and SmtpError("y").retryable is True


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:s3cret@h:5672/vh", "amqp://guest:***@h:5672/vh"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://db/x?user=a&password=s3cret", "postgresql://db/x?user=a&password=***"),
        ("host=db password=s3cret user=app", "host=db password=*** user=app"),
        ("https://h/x?token=t&q=1&API_KEY=k", "https://h/x?token=***&q=1&API_KEY=***"),
        ("postgresql://u:s3cret@[bad/x", "postgresql://***@[bad/x"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ("mysql://admin:abc/def@h/db", "mysql://admin:***@h/db"),  # "/" in the password: urlsplit sees none
        ("postgresql://u:a#b?c@h:5432/x", "postgresql://u:***@h:5432/x"),
        ("https://f.example/api/run?code=abc&x=1", "https://f.example/api/run?code=***&x=1"),  # Azure Functions'
        ("http://host:8080/path", "http://host:8080/path"),
        ("http://host:8080/notify?email=ops@corp.com", "http://host:8080/notify?email=ops@corp.com"),  # a port
        (
            "https://api.example.com:443/v1/users/alice@example.com",
            "https://api.example.com:443/v1/users/alice@example.com",
        ),
        ("redis://:p/w@h:6379/0", "redis://:***@h:6379/0"),
        # a secret word after a separator, whatever the prefix (GitLab's private_token, auth_token, x-api-key), not
        # inside a word (monkey) nor a name that only starts with one (keyword)
        (
            "https://h/x?auth_token=a1&private_token=p2&x-api-key=k3&client.secret=s4&monkey=1&keyword=2&page=3",
            "https://h/x?auth_token=***&private_token=***&x-api-key=***&client.secret=***&monkey=1&keyword=2&page=3",
        ),
        ("https://h/x?auth%5Btoken%5D=t&q=1", "https://h/x?auth%5Btoken%5D=***&q=1"),
        ("postgresql://u@h/db?sslpassword=TopSecret", "postgresql://u@h/db?sslpassword=***"),
    ],
)
def test_one_url_redaction(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://postgres:Sup3r%zzSecretPw@127.0.0.1:5432/postgres", ["Sup3r%zzSecretPw"]),  # a bad %-escape
        ("postgresql://postgres:Other Secret@127.0.0.1:5432/postgres", ["Other Secret"]),  # a space
        ("postgresql://postgres:ThirdSecret@[::1/postgres", ["ThirdSecret"]),  # an unclosed "[": no parser reads it
        ("mysql://root:p%40ss%20word@127.0.0.1:3306/test", ["p%40ss%20word", "p@ss word"]),  # as written, decoded
        ("mariadb://admin:abc/def@h/db", ["abc/def"]),  # "/" in the password: the last "@" ends it
        ("postgresql://u:a#b?c@h:5432/x", ["a#b?c"]),
        ("redis://:p/w-secret@h:6379/0", ["p/w-secret", "w-secret"]),
        ("postgresql://db/x?user=a&password=s3%20cr+et", ["s3%20cr+et", "s3 cr+et", "s3 cr et"]),
        ("host=db password='it\\'s secret' user=app", ["it's secret"]),  # libpq's key=value, quoted
        ("host=db password=plain-pw user=app", ["plain-pw"]),
        ("postgresql://postgres@127.0.0.1:5432/test", []),
        ("http://host:8080/notify?email=ops@corp.com", []),  # a host and a port, then an "@" in the query
        ("https://api.example.com:443/v1/users/alice@example.com", []),
        ("sqlite:///tmp/x.db", []),
        ("postgresql://u@h/db?sslpassword=TopSecretKeyPass", ["TopSecretKeyPass"]),  # libpq's key's passphrase
        ("host=db sslpassword=abcdSECRET user=x", ["abcdSECRET"]),
        (  # several servers: each's own password too (read as one, the text between the first ":" and the last "@")
            "nats://alice:pw1secret@h1:4222,bob:pw2secret@h2:4222",
            ["pw1secret@h1:4222,bob:pw2secret", "pw1secret", "h1:4222,bob:pw2secret", "pw2secret"],
        ),
        ("postgresql://u:a,b-secret@h/db", ["a,b-secret"]),  # a comma in one password
        # an "@" or a "?" unescaped: libpq reads the password to the first, and quotes what follows as a host or a
        # parameter ('could not translate host name "rd9999@127.0.0.1"'): those pieces are secrets too
        ("postgresql://postgres:Pw@rd9999@127.0.0.1:5432/test", ["Pw@rd9999", "rd9999"]),
        ("postgresql://postgres:Se?cretPw99@127.0.0.1:5432/test", ["Se?cretPw99", "cretPw99"]),
    ],
)
def test_a_connection_urls_password_is_a_secret_even_in_a_url_no_parser_reads(url: str, secrets: list[str]) -> None:
    """What libpq quotes of a URL it cannot read (``invalid percent-encoded token: "<password>"``) was left in
    clear: ``redact_url`` masks a password by its place in the URL, not where an error quotes it apart."""
    assert connection_secrets(url) == secrets


def test_a_drivers_error_is_masked_by_its_urls_password_and_products_learn_theirs() -> None:
    url = "postgresql://postgres:Sup3r%zzSecretPw@127.0.0.1:5432/postgres"
    error = 'invalid percent-encoded token: "Sup3r%zzSecretPw"'
    assert mask_connection_url(error, url) == 'invalid percent-encoded token: "[secret]"'
    assert mask_connection_url(error, url, mask="***") == 'invalid percent-encoded token: "***"'
    product = Secrets()
    product.learn_settings(
        {"databases": {"main": {"envs": {"dev": url, "prd": "mysql://app:MariaPw-123@db:3306/shop"}}},
         "brokers": {"bus": {"envs": {"dev": "amqp://guest:Rabbit-Pw-9@h:5672/"}}}}
    )  # fmt: skip
    text = "Sup3r%zzSecretPw MariaPw-123 Rabbit-Pw-9 Sup3r%25zzSecretPw"
    assert product.mask_text(text) == "[secret] [secret] [secret] [secret]"


def test_url_redaction_takes_extra_names_and_a_mask() -> None:
    assert (
        redact_url("https://a:b@h/?sig_x=1&p=2", ["sig_x"], mask="REDACTED")
        == "https://a:REDACTED@h/?sig_x=REDACTED&p=2"
    )


def test_one_exception_to_text() -> None:
    assert describe(ValueError("bad  thing")) == "ValueError: bad  thing"
    assert describe(ValueError()) == "ValueError"
    assert describe(ValueError("ValueError: already named")) == "ValueError: already named"
    try:
        raise KeyError("k")
    except KeyError as exc:
        text = describe(exc, trace=2)
    assert text.startswith("KeyError: 'k'\n") and "test_one_exception_to_text" in text
    assert len(describe(ValueError("x" * 10_000))) == errors.ERROR_TEXT_CHARS


def test_one_page_check() -> None:
    check_page(MAX_PAGE, MAX_OFFSET)
    for limit, offset, field in ((0, 0, "limit"), (MAX_PAGE + 1, 0, "limit"), (True, 0, "limit"), (1, -1, "offset")):
        with pytest.raises(ValidationError) as info:
            check_page(limit, offset)
        assert info.value.field == field and "must be a whole number between" in info.value.rule


def test_one_enum_check() -> None:
    assert check_enum(RunPhase, "failed", "phase") is RunPhase.FAILED
    assert check_enum(RunPhase, None, "phase") is None
    with pytest.raises(ValidationError, match=r"phase: 'exploded' is not one of scheduled, "):
        check_enum(RunPhase, "exploded", "phase")


def test_one_event_type_parser() -> None:
    assert JobEventTypes.parse("publish") is JobEventTypes.MESSAGEBROKER
    assert FeatureEventTypes.parse("Message-Broker") is FeatureEventTypes.MESSAGEBROKER
    for kind in (JobEventTypes, FeatureEventTypes):
        with pytest.raises(ValueError, match="unknown event type 'SMS'"):
            kind.parse("SMS")


def test_retry_retries_what_it_may_and_stops_at_what_it_may_not() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("away")
        return "ok"

    backoff = Backoff(base=timedelta(seconds=1), jitter=0.0)
    assert retry(flaky, tries=3, backoff=backoff, sleep=waits.append) == "ok"
    assert waits == [1.0, 2.0]  # Backoff's delays, not a loop of its own

    calls.clear()
    with pytest.raises(ConnectionError):  # the rule says no (a failure during commit): no second try
        retry(flaky, tries=5, backoff=backoff, retryable=lambda exc: False, sleep=waits.append)
    assert len(calls) == 1


def test_retry_async_gives_up_after_its_tries() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def broken() -> None:
        calls.append(1)
        raise ConnectionError("away")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with pytest.raises(ConnectionError):
        asyncio.run(retry_async(broken, tries=4, backoff=Backoff(base=timedelta(seconds=0.1), jitter=0.0), sleep=sleep))
    assert len(calls) == 4 and waits == pytest.approx([0.1, 0.2, 0.4])


def test_records_are_msgspec_structs_never_dataclasses() -> None:
    """One way to declare a record: ``msgspec.Struct`` (defined ~40x faster than a frozen slotted dataclass at import,
    which a worker's start pays for every record class; built faster in the hot path)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "dataclasses":
                found.append(f"{path.relative_to(PACKAGE)}: from dataclasses import ...")
            elif isinstance(node, ast.Import) and any(a.name == "dataclasses" for a in node.names):
                found.append(f"{path.relative_to(PACKAGE)}: import dataclasses")
    assert found == []


def test_a_secret_in_a_url_path_is_masked_as_httpx_spells_it() -> None:
    """An action's ``/bot$Secret{bot}/sendMessage`` with a secret holding a space beside "/", ":", "+" or "=":
    httpx sends ``%20`` and leaves the rest, a spelling the masking did not know, so the run's error showed it."""
    import httpx

    secret = "123456:AAH/x+y z=Qk"
    url = str(httpx.URL(f"http://127.0.0.1:8080/bot{secret}/sendMessage"))
    assert secret not in url and "x+y%20z=Qk" in url  # httpx's own spelling
    hidden = Secrets()
    hidden.learn([secret])
    assert hidden.mask_text(f"HttpError: POST {url} -> HTTP 500") == (
        "HttpError: POST http://127.0.0.1:8080/bot[secret]/sendMessage -> HTTP 500"
    )


def test_a_secret_is_masked_as_quote_and_repr_spell_it() -> None:
    """``urllib.parse.quote(token)`` keeps "/" (its default ``safe``): a base64 token with "/", "+" and "=" was
    left in clear in a run's error; and Python's ``repr`` (a dict or a tuple in an exception's text) doubles a
    backslash and escapes the quote it writes around, a spelling JSON's escaping does not make."""
    from urllib.parse import quote

    token, quoted = "Zm9vYmFy/YmF6cXV4+dG9rZW4=", "q\"uo\\te/d'val-0123"
    hidden = Secrets()
    hidden.learn([token, quoted])
    assert hidden.mask_text(f"GET https://api.example.com/items?token={quote(token)} failed") == (
        "GET https://api.example.com/items?token=[secret] failed"
    )
    assert hidden.mask_text(str(KeyError({"q": quoted}))) == "{'q': '[secret]'}"
    assert hidden.mask_text(repr((quoted,))) == "('[secret]',)"
