"""Secrets masked by value wherever text leaves the engine.

A product's secrets (``envs.<env>.secrets``, ``session_secret``, ``callback_secret``, the tokens and passwords
of its auth and SMTP settings, and the passwords in its databases' and brokers' URLs: ``connection_secrets``)
are learned when the product is added, and again, expanded, when a run reads one or connects
(``Products.secrets``). Every run error, run output, feature event result, log line, webhook delivery snippet and
span (``tracing.py``) is masked before it is recorded or written, so the API, the dashboard, webhook payloads,
the CLI (which all read those records) and traces never show one. The raw value is masked, and so are its
URL-encoded and JSON-escaped spellings.

A value shorter than ``MIN_LENGTH`` characters is not masked (it would mask ordinary words): give secrets
real length. The Basic credentials the engine sends (a ``basic`` auth's, a URL's user part) are learned as each
request is built (``SENT_SECRETS_EXTENSION``, learned by ``perform``); what a secret looks like after other
encodings (base64 of the caller's making, a hash) cannot be recognised, and is not masked.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from msgspec import Struct

MASK = "[secret]"
MIN_LENGTH = 4
#: What a URL's path keeps as it is (RFC 3986's pchar and "/"): httpx sends a secret in an action's path so, its
#: space as %20 beside a ":", "+" or "=" left alone, a spelling neither quote(safe="") nor quote_plus makes.
_IN_A_PATH = "/:@!$&'()*+,;="
#: Keys of a product's settings whose values are secrets.
SECRET_KEYS = frozenset({"secrets", "session_secret", "callback_secret", "token", "password"})
#: Keys of a product's settings whose entries hold connection URLs by env (``<key>.<tag>.envs.<env>``).
URL_KEYS = frozenset({"databases", "brokers"})
_AUTH_SECRET_KEYS = frozenset({"token", "password", "value"})  # inside an ``auth`` block
#: The words that end a credential's name (``auth_token``, ``client.secret``, ``X-Hub-Signature``).
_CREDENTIAL_WORDS = "token|secret|password|passwd|signature"
#: A header of an app's or provider's ``headers`` whose value is a credential, whatever it holds: ``Authorization``,
#: ``Cookie``, ``X-Api-Key``, ``X-Auth-Token``, ``Client-Secret`` ... (an API key sent in a header was not masked).
_SECRET_HEADER = re.compile(
    rf"(?i)(?:.*[-_.])?(?:authorization|authentication|api[-_]?key)|cookie|(?:.*[-_.])?(?:{_CREDENTIAL_WORDS})"
)
#: A header whose name may be a credential's (``X-Auth-Key``, ``Ocp-Apim-Subscription-Key``, ``X-Auth``) or not
#: (``X-Cache-Key: orders``, ``Idempotency-Key``): its value is a secret when it is read from the environment alone
#: (``${CF_KEY}``, ``Key ${CF_KEY}``), not a word written in the product (which would be masked everywhere).
_MAYBE_SECRET_HEADER = re.compile(r"(?i).*(?:key|auth)")
#: A credential header's value as ``<scheme> <credentials>`` (``Bearer ...``): the credentials are learned apart
#: too, as an answer may echo them alone.
_SCHEME_VALUE = re.compile(r"[A-Za-z][\w-]*\s+(\S.*)")
#: ``${VAR}``: a value read from the environment (``products.registry.expand``; masked once read).
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")
_HTML_SAFE_JSON = re.compile(r"[&<>\u2028\u2029]")  # what Go's encoding/json writes as \u0026 ...


class Secrets:
    """The set of secret values to mask. Thread-safe; learning a value twice costs nothing."""

    def __init__(self, parent: Secrets | None = None) -> None:
        self._parent = parent  # learns whatever this one learns (the process's set, for log lines)
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self._children: dict[str, Secrets] = {}

    def of(self, tag: str) -> Secrets:
        """The secrets of one product (learning into it learns into this set too). A run's records are masked
        with its own product's secrets only, so masking tells a caller nothing about another product's."""
        with self._lock:
            child = self._children.get(tag)
            if child is None:
                child = self._children[tag] = Secrets(parent=self)
            return child

    def learn(self, values: Iterable[str]) -> None:
        """Mask these values from now on, with their URL-encoded spellings (``quote`` with and without its default
        ``safe="/"``, ``quote_plus``, a path's), and as JSON and Python's ``repr`` escape them (an exception's
        text shows a dict or a tuple by its ``repr``)."""
        spellings: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_LENGTH or ENV_VAR.fullmatch(value):
                continue
            encoded = {
                quote(value, safe=""),
                quote(value),
                quote_plus(value),
                quote(value, safe=_IN_A_PATH),
                quote(value, safe="!'()*~"),  # JavaScript's encodeURIComponent
            }
            encoded |= {e.replace("~", "%7E") for e in encoded}  # PHP's urlencode, Java's URLEncoder
            encoded |= {_LOWER_HEX.sub(lambda m: m.group().lower(), e) for e in encoded}  # %2f as well as %2F
            as_json = json.dumps(value)[1:-1]
            spellings.update(
                {
                    value,
                    *encoded,
                    as_json,
                    as_json.replace("/", "\\/"),  # JSON may escape "/" (PHP's json_encode does by default)
                    _HTML_SAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", as_json),  # Go's encoding/json
                    repr(value)[1:-1],
                }
            )
        if self._parent is not None:
            self._parent.learn(spellings)
        with self._lock:
            new = spellings - self._values
            if not new:
                return
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)  # the longest spelling wins an overlap
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def learn_settings(self, settings: Any) -> None:
        """Learn every secret in a product's settings (a ``model_dump()``), ``${VAR}`` read when it is set."""
        self.learn(_expanded(v) for v in _secret_values(settings, inside=False))
        self.learn(_header_secrets(settings))
        self.learn(s for url in _connection_urls(settings) for s in connection_secrets(_expanded(url)))
        sent = (*_walk_key(settings, "base_url"), *_walk_key(settings, "url"))  # apps', providers' and callbacks'
        self.learn(s for url in sent for s in url_secrets(_expanded(url), written=url))
        self.learn(s for smtp in _walk_key(settings, "smtp", Mapping) for s in smtp_secrets(smtp))

    def mask_text(self, text: str, mask: str = MASK) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(mask, text)

    def mask_cut(self, text: str, mask: str = MASK) -> str:
        """``mask_text`` for a text cut short (a body read up to its bound), its end dropped as well: twice as many
        characters as the longest secret's spelling holds less one, in steps of 256. A text is cut after it is
        masked wherever the whole is at hand; this is for the one that never was: a caller who pads what comes before
        a secret chooses where the cut falls, and read all of it but its last character. Whatever the cut left of a
        secret is dropped, whichever it is (masking an end only when it began a secret told a caller, guess by
        guess, how one begins)."""
        text = self.mask_text(text, mask)
        with self._lock:
            longest = max(map(len, self._values), default=0)
        # twice over: a short secret masked in the end dropped grows to the mask's length, shifting what is dropped
        drop = -(-2 * (longest - 1) // 256) * 256 if longest > 1 else 0
        return text[: max(0, len(text) - drop)]

    def mask(self, value: Any) -> Any:
        """``value`` (text, or JSON-like data) with every secret in its strings (and keys) masked, and each number that
        is one (its digits the secret's, whole)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, Mapping):
            return {self.mask(k) if isinstance(k, str) else k: self.mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask(item) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool) and self.mask_text(str(value)) == MASK:
            return MASK  # a secret of digits (a PIN) given back as a JSON number, whole (a security probe)
        return value


def _secret_values(node: Any, *, inside: bool) -> Iterable[str]:
    if isinstance(node, str):
        if inside:
            yield node
    elif isinstance(node, Mapping):
        for key, item in node.items():
            if key == "auth" and isinstance(item, Mapping):
                yield from (v for k, v in item.items() if k in _AUTH_SECRET_KEYS and isinstance(v, str))
            else:
                yield from _secret_values(item, inside=inside or key in SECRET_KEYS)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _secret_values(item, inside=inside)


def _header_secrets(node: Any) -> Iterable[str]:
    """The credentials of every ``headers`` mapping in a product's settings, ``${VAR}`` read: a credential header's
    value (``_SECRET_HEADER``) whole and, after a scheme, alone; a maybe-credential header's
    (``_MAYBE_SECRET_HEADER``) when the environment gives it (the whole value, or what follows a scheme, a ``${VAR}``).
    Not each ``${VAR}`` of a value: ``${SCHEME} ${TOKEN}`` would have masked the word "Bearer" everywhere."""
    if isinstance(node, Mapping):
        for key, item in node.items():
            if key == "headers" and isinstance(item, Mapping):
                for name, value in item.items():
                    if not isinstance(value, str):
                        continue
                    if _SECRET_HEADER.fullmatch(str(name)):
                        found = [value]
                    elif _MAYBE_SECRET_HEADER.fullmatch(str(name)):
                        scheme = _SCHEME_VALUE.fullmatch(value)
                        found = [v for v in (value, scheme and scheme.group(1)) if v and ENV_VAR.fullmatch(v)]
                    else:
                        continue
                    for credential in map(_expanded, found):
                        yield credential
                        yield from (m.group(1) for m in [_SCHEME_VALUE.fullmatch(credential)] if m)
            else:
                yield from _header_secrets(item)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _header_secrets(item)


def _walk_key(node: Any, wanted: str, kind: type | tuple[type, ...] = str) -> Iterable[Any]:
    """Every value of type ``kind`` (text, by default) under a key ``wanted`` in ``node``, at any depth."""
    if isinstance(node, Mapping):
        for key, item in node.items():
            if key == wanted and isinstance(item, kind):
                yield item
            else:
                yield from _walk_key(item, wanted, kind)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk_key(item, wanted, kind)


def smtp_secrets(smtp: Mapping[str, Any]) -> list[str]:
    """What the engine sends of an SMTP login's password besides the password (``${VAR}`` read): AUTH LOGIN's base64
    of it and AUTH PLAIN's base64 of ``\\0user\\0password``, which a server quoting the exchange back in its refusal
    showed."""
    username, password = smtp.get("username"), smtp.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return []
    user, secret = _expanded(username), _expanded(password)
    return [
        base64.b64encode(secret.encode()).decode("ascii"),
        base64.b64encode(f"\0{user}\0{secret}".encode()).decode("ascii"),
    ]


def basic_credentials(username: str, password: str) -> str:
    """What ``Authorization: Basic`` carries: base64 of ``username:password`` in UTF-8 (``HttpAuth.apply``, and httpx
    for a URL's user part)."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


#: A query parameter whose value is a credential whatever it holds (``api_key``, ``access_token``, ``client_secret``);
#: one whose name ends as a credential's does (``auth_token``, ``x_api_key``, but ``use_token=true``, ``sort_key``)
#: is one when its value looks like a token (``_token_like``), and one whose name may be a credential's or not
#: (``key``, ``code``, ``auth``) when its value is read from the environment alone (``${VAR}``), as a header's.
_CREDENTIAL_PARAM = re.compile(r"(?i)access_token|api[-_]?key|client_secret|password|secret|signature|sig|token")


def url_secrets(url: str, *, written: str | None = None) -> list[str]:
    """What of a URL the engine sends a request to (an app's ``base_url``, a provider's or a callback's ``url``) is a
    secret: its password (as written and decoded, ``connection_secrets``; also when its scheme is malformed,
    ``htps//user:pw@host``, which a run's error quotes), its user part when it has no password (``https://sk_live_...@``:
    a token more often than a name), the Basic credentials httpx builds from its user part, and the values of its
    credential query parameters (``_CREDENTIAL_PARAM``, or a maybe-credential one whose value ``written``, the URL as
    the product wrote it, gives as a ``${VAR}``): a run's output or error showed what its log line hid."""
    readable = readings(url)[-1]
    found = connection_secrets(url)
    try:
        parts = urlsplit(readable)
        user, password = unquote(parts.username or ""), parts.password
        if password is not None:
            found.append(basic_credentials(user, unquote(password)))
        elif user:
            found += [parts.username or "", user, basic_credentials(user, "")]
        given = dict(parse_qsl(urlsplit(written).query)) if written else {}
        for name, value in parse_qsl(parts.query):
            named = re.fullmatch(_SECRET_NAMED, name, re.IGNORECASE) is not None
            from_env = ENV_VAR.fullmatch(given.get(name, "")) is not None
            maybe = named or name.lower() in SECRET_QUERY_PARAMS
            if _CREDENTIAL_PARAM.fullmatch(name) or (named and _token_like(value)) or (maybe and from_env):
                found.append(value)
    except ValueError:  # a netloc urlsplit cannot read: connection_secrets read what it could
        pass
    return found


def _connection_urls(settings: Any) -> Iterable[str]:
    """The URLs of a product's databases and brokers (``URL_KEYS``), as written."""
    if not isinstance(settings, Mapping):
        return
    for key in URL_KEYS:
        owners = settings.get(key)
        for owner in owners.values() if isinstance(owners, Mapping) else ():
            envs = owner.get("envs") if isinstance(owner, Mapping) else None
            yield from (url for url in (envs.values() if isinstance(envs, Mapping) else ()) if isinstance(url, str))


def _expanded(value: str) -> str:
    return ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)


#: The process's secrets, for log lines (logging is process-wide): every client's ``Products.secrets``
#: feeds it. Records are masked with their own client's set.
SECRETS = Secrets()


def mask_text(text: str) -> str:
    """``text`` with every secret this process knows masked (log lines)."""
    return SECRETS.mask_text(text)


#: Query parameters (and ``key=value`` connection settings) whose values ``redact_url`` hides.
SECRET_QUERY_PARAMS = frozenset(
    {"access_token", "api_key", "apikey", "api-key", "auth", "client_secret", "code", "key", "password", "secret",
     "sig", "signature", "sslpassword", "token"}
)  # fmt: skip
URL_MASK = "***"
#: ``request.extensions`` key of an HTTP request listing the query parameters to hide wherever its URL is shown
#: (the auth parameter of an action: its error messages, its trace span).
REDACT_EXTENSION = "ductape_redact_query"
#: ``request.extensions`` key of an HTTP request listing the credentials the engine built into it (a basic auth's,
#: its URL's: ``url_secrets``): its product's secrets learn them before it is sent (``perform``), whatever they were
#: made of (``${VAR}``, ``$Secret{...}``), so an answer echoing them is masked.
SENT_SECRETS_EXTENSION = "ductape_sent_secrets"
#: ``request.extensions`` key marking a webhook's delivery: its URL is shown as ``redact_webhook_url`` shows it
#: (its error messages, its trace span).
WEBHOOK_EXTENSION = "ductape_webhook_url"


#: A URL's start: its scheme and ``://`` (what a database's or broker's URL in a product must have).
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_KEY_VALUE = re.compile(r"\s*[\w.\-]+\s*=")  # a libpq key=value connection string's start
_BROKEN_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):?/+")  # postgresql//, postgresql:/, http:/


def readings(url: str) -> list[str]:
    """``url`` as URLs with a scheme, to find its credentials in: itself when it has ``scheme://`` or is a libpq
    ``key=value`` string; else (a scheme mistyped, ``postgresql//u:pw@h`` or ``postgresql:/u:pw@h``, or left out,
    ``u:pw@h/db``: a driver's error quotes it whole) each way it may be read, its scheme or the lack of one put
    right."""
    if URL_SCHEME.match(url) or _KEY_VALUE.match(url) or "@" not in url:
        return [url]
    broken = _BROKEN_SCHEME.match(url)
    return list(dict.fromkeys([f"x://{url}", *([f"{broken.group(1)}://{url[broken.end() :]}"] if broken else [])]))


#: Schemes whose URL's user part alone (no ``:password``) is a token: NATS's (``nats://<token>@host``; nats-py sends
#: it as ``auth_token``).
TOKEN_USER_SCHEMES = frozenset({"nats"})

_LOOSE_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):[^@\s]*[/?#][^@\s]*@(?=[^@]*$)")


def _plain_host(parts: SplitResult) -> bool:
    """Whether urlsplit's netloc is a host and a port: ``admin:abc`` (the start of ``admin:abc/def@h``) is not, and
    only then is the rest read as a password (``host:8080/x?to=ops@corp`` is a host, a port and a path)."""
    try:
        parts.port  # noqa: B018 - a port that is not a number raises
    except ValueError:
        return False
    return bool(parts.hostname) or not parts.netloc


def redact_url(url: str, params: Iterable[str | None] = (), mask: str = URL_MASK) -> str:
    """``url`` (a URL, or a libpq ``key=value`` connection string) for messages and logs: the password in its
    user part and the values of secret parameters (``params`` and ``SECRET_QUERY_PARAMS``) replaced by ``mask``.

    The one redaction of URLs: brokers, DATABASE_ACTIONs, HTTP calls, the PostgreSQL store and the CLI use it;
    a webhook's URL, whose path holds its receiver's secret, is shown by ``redact_webhook_url``.
    """
    try:
        parts = urlsplit(url)
        if readings(url) != [url]:  # no scheme, or a mistyped one (postgresql//u:pw@h): all before the last "@" hidden
            head, _, host = url.rpartition("@")
            broken = _BROKEN_SCHEME.match(head)
            url = f"{head[: broken.end()] if broken else ''}{mask}@{host}"
        elif "," in parts.netloc and "@" in parts.netloc:  # several servers (NATS): each one's credentials
            token = parts.scheme.lower() in TOKEN_USER_SCHEMES
            servers = [_redact_server(server, token, mask) for server in parts.netloc.split(",")]
            url = urlunsplit(parts._replace(netloc=",".join(servers)))
        elif parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{mask}@{host}"))
        elif parts.username and parts.scheme.lower() in TOKEN_USER_SCHEMES:
            url = urlunsplit(parts._replace(netloc=f"{mask}@{parts.netloc.rpartition('@')[2]}"))
        elif not _plain_host(parts):  # a password holding "/", "?" or "#" ends urlsplit's netloc before its "@"
            url = _LOOSE_PASSWORD.sub(rf"\1:{mask}@", url, count=1)
    except ValueError:  # a malformed netloc: hide everything before the host
        url = re.sub(r"(://)[^/@]*@", rf"\1{mask}@", url)
    names = {n.lower() for n in params if n} | SECRET_QUERY_PARAMS
    # and as a URL spells them: httpx sends auth[token] as auth%5Btoken%5D
    names |= {quote(n, safe="").lower() for n in names}
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + "|" + _SECRET_NAMED
    return re.sub(rf"(?i)((?:^|[?&;\s])(?:{pattern})=)[^&;\s#]*", lambda m: m.group(1) + mask, url)


def _redact_server(server: str, token: bool, mask: str) -> str:
    """One server of a URL's list (``user:pw@host``): its password masked, or a user part alone when it is a token."""
    userinfo, at, host = server.rpartition("@")
    if not at:
        return server
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{mask}@{host}" if colon else f"{mask}@{host}" if token else server


#: A parameter whose name ends in one of SECRET_QUERY_PARAMS' words after a separator (``auth_token``,
#: ``private_token``, ``x-api-key``, ``client.secret``, ``auth[token]``) is secret too, whatever its prefix.
_SECRET_NAMED = rf"[\w.\-\[\]%]*?(?:[_.\-\[]|%5b)(?:{_CREDENTIAL_WORDS}|key)(?:\]|%5d)?"


def connection_secrets(url: str) -> list[str]:
    """What of a connection URL (a database's, a broker's, the store's) is a secret, to mask by value wherever a
    text quotes it apart from ``redact_url``'s shape (a driver's error: ``invalid percent-encoded token:
    "<password>"``, or the whole URL it could not read): the password, as written and percent-decoded, and the
    value of a ``password`` parameter (in the query, or a libpq ``key=value`` string).

    The password is found even in a URL no parser reads (a space in it, an unclosed ``[``): the text between the
    user's ``:`` and the last ``@`` of the authority; when the authority before the first ``/``, ``?`` or ``#`` is
    not a host and a port, the password holds one of them, and its ``@`` is the last of the URL (as
    ``redact_url`` reads it)."""
    if readings(url) != [url]:
        return list(dict.fromkeys(s for reading in readings(url) for s in connection_secrets(reading)))
    found: list[str] = []
    scheme, sep, rest = url.partition("://")
    if sep:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        userinfo, at, _ = authority.rpartition("@")
        if not at and not _plain_authority(authority):
            userinfo, at, _ = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and not re.search(r"[/?#]", user):
            found += [password, unquote(password), *_read_apart(password)]
        elif at and user and scheme.lower() in TOKEN_USER_SCHEMES:  # nats://<token>@host: a token, not a name
            found += [user, unquote(user)]
        if "," in authority:  # several servers, each its own user and password (NATS: nats://a:p1@h1,b:p2@h2)
            for server in authority.split(","):
                user, colon, password = server.rpartition("@")[0].partition(":")
                if colon:
                    found += [password, unquote(password)]
                elif user and scheme.lower() in TOKEN_USER_SCHEMES:
                    found += [user, unquote(user)]
    for match in _PASSWORD_PARAM.finditer(url):
        value = match.group(1)
        if value.startswith("'"):  # libpq's quoting: 'a value', \' and \\ escaped
            value = re.sub(r"\\(.)", r"\1", value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:])
        found += [value, unquote(value), unquote_plus(value)]
    return [s for s in dict.fromkeys(found) if s]


def _read_apart(password: str) -> list[str]:
    """The pieces of ``password`` that a driver reading its URL otherwise quotes apart, of 4 characters or more (as
    masking by value takes): libpq ends the password at its first ``@`` (``Pw@rd9999@db``: ``could not translate
    host name "rd9999@db"``) and the authority at a ``?``, ``#`` or ``/`` (``unknown parameter 'cretPw99@db'``),
    so the text before and after each of them."""
    pieces: list[str] = []
    for mark in re.finditer(r"[@?#/]", password):
        pieces += [password[: mark.start()], password[mark.end() :]]
    return [p for p in pieces if len(p) >= 4]


#: A ``password`` parameter, or one whose name ends in it (libpq's ``sslpassword``, a driver's ``db_password``).
_PASSWORD_PARAM = re.compile(r"(?i)(?:^|[?&;\s])[\w.\-]*password\s*=\s*('(?:[^'\\]|\\.)*'?|[^&;\s#]*)")


def _plain_authority(authority: str) -> bool:
    """Whether ``authority`` (with no ``@``) reads as a host and a port (``_plain_host``)."""
    try:
        return _plain_host(urlsplit(f"//{authority}"))
    except ValueError:
        return False


def mask_connection_url(text: str, url: str, mask: str = MASK) -> str:
    """``text`` (a driver's error about ``url``) with the secrets of the connection URL ``url`` masked wherever it
    quotes them (``connection_secrets``): the messages of the database executors and of the PostgreSQL store."""
    hidden = Secrets()
    hidden.learn(connection_secrets(url))
    return hidden.mask_text(text, mask)


def redact_webhook_url(url: str, mask: str = URL_MASK) -> str:
    """A webhook's URL as it is shown (answers, the CLI, messages): its scheme, host and port, the user part with
    its password masked (a user part alone is masked whole: it is a token more often than a name), the first
    segment of the path when the path has more than one and it does not look like a token (``_token_like``), the
    rest of the path masked as one ``mask``, a first label of the host that looks like a token masked, and the
    query and the fragment masked whole: ``https://hooks.slack.com/services/***``, ``https://example.com/***``,
    ``https://chat.googleapis.com/v1/***?***``, ``https://api.telegram.org/***``, ``https://***.m.pipedream.net``.
    Receivers carry their secret in the path (Slack, Discord, Zapier, Telegram), in the query (Teams' ``sig``,
    Google Chat's ``key`` and ``token``) or in the host (Pipedream), so a one-segment path is masked too.
    Deliveries are sent to the whole URL; other URLs are shown by ``redact_url``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed host: nothing of it is shown
        return mask
    try:
        parts.port  # noqa: B018 - a port that is not a number raises: then its host part is not trusted either
    except ValueError:
        return f"{parts.scheme}://{mask}" if parts.scheme else mask
    user, at, host = parts.netloc.rpartition("@")
    if at:
        user = f"{parts.username}:{mask}" if parts.password is not None and parts.username else mask
    first, _, rest = parts.path[1:].partition("/")
    if not parts.path.strip("/"):
        path = parts.path
    else:  # Telegram's /bot<token>/sendMessage: a first segment that looks like a token is masked with the rest
        path = f"/{first}/{mask}" if rest and not _token_like(first) else f"/{mask}"
    label, dot, domain = host.partition(".")
    if "." in domain and _token_host(label):  # Pipedream's <token>.m.pipedream.net: a token as a subdomain
        host = f"{mask}{dot}{domain}"
    shown = f"{parts.scheme}://{user}{at}{host}{path}" if parts.scheme else f"{user}{at}{host}{path}"
    return shown + (f"?{mask}" if parts.query else "") + (f"#{mask}" if parts.fragment else "")


def webhook_url_secrets(url: str) -> list[str]:
    """What ``redact_webhook_url`` hides of a webhook's URL, to mask where a text quotes it apart from the URL (an
    error naming the address it reached, a receiver's answer echoing its token): the password (or a user part
    alone), the query, the hidden rest of the path when it has more than one segment, and each of its segments,
    each query value and the fragment that looks like a token (6 or more characters not all letters, or 16 or
    more): a path of one word (``/hooks``) is not masked in text, as the word would be everywhere."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - as in redact_webhook_url
    except ValueError:
        return [url]
    user = parts.netloc.rpartition("@")[0]
    first, _, rest = parts.path[1:].partition("/")
    hidden_path = rest if rest else first
    pieces = [parts.password if parts.password is not None and parts.username else user, parts.query]
    if "/" in hidden_path.strip("/"):
        pieces.append(hidden_path)
    values = (item.partition("=")[2] for item in re.split("[&;]", parts.query))
    label, _, domain = (parts.hostname or "").partition(".")
    words = [first, *hidden_path.split("/"), *values, parts.fragment]
    pieces += [w for w in words if _token_like(w)] + ([label] if "." in domain and _token_host(label) else [])
    return [p for p in dict.fromkeys(pieces) if p]


def _token_like(word: str) -> bool:
    """A piece of a webhook's URL that may be its secret: 16 characters or more, or 6 or more not all letters
    (``services``, ``api``, ``v1``, ``hooks`` are shown; ``bot123456:AAH...`` is not)."""
    return len(word) >= 16 or (len(word) >= 6 and not word.isalpha())


def _token_host(label: str) -> bool:
    """A host's first label (of three or more) that may be a token: 12 characters or more, a digit among them
    (``eo1a2b3c4d5e6f7`` is masked; ``hooks``, ``prod-1``, ``outlook`` are not)."""
    return len(label) >= 12 and any(c.isdigit() for c in label)


def mask_webhook_url(text: str, url: str, mask: str = URL_MASK) -> str:
    """``text`` with the webhook URL ``url`` shown as ``redact_webhook_url`` shows it, and what that hides masked
    wherever else it appears (``webhook_url_secrets``): a delivery's error and what it keeps of an answer."""
    hidden = Secrets()
    hidden.learn(webhook_url_secrets(url))
    return hidden.mask_text(text.replace(url, redact_webhook_url(url, mask)), mask)


__all__ = [
    "MASK",
    "MIN_LENGTH",
    "REDACT_EXTENSION",
    "SECRETS",
    "SECRET_QUERY_PARAMS",
    "WEBHOOK_EXTENSION",
    "Secrets",
    "connection_secrets",
    "mask_connection_url",
    "mask_text",
    "mask_webhook_url",
    "readings",
    "redact_url",
    "redact_webhook_url",
    "smtp_secrets",
    "webhook_url_secrets",
]


def repr_without(
    record: Struct, secret: frozenset[str], shown: Mapping[str, Callable[[Any], Any]] | None = None
) -> str:
    """``repr`` of a record with its secret fields left out (a password in a log line or a traceback's locals
    would leave the engine), and the fields of ``shown`` as its functions show them (a webhook's URL)."""
    fields = ", ".join(f"{name}={value!r}" for name, value in fields_without(record, secret, shown))
    return f"{type(record).__name__}({fields})"


def fields_without(
    record: Struct, secret: frozenset[str], shown: Mapping[str, Callable[[Any], Any]] | None = None
) -> list[tuple[str, Any]]:
    """A record's fields but its secret ones, by name, those of ``shown`` passed through its functions: its
    ``repr`` and rich's ``__rich_repr__`` (which a Struct otherwise answers with every field)."""
    show = shown or {}
    return [
        (name, show[name](value) if name in show else value)
        for name in record.__struct_fields__
        if name not in secret
        for value in (getattr(record, name),)
    ]
