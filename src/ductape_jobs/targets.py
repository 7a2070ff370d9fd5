"""Where the engine may send a request on a caller's behalf, and what it keeps of the answer.

A webhook's URL is given by an API key holder, so a delivery must not become a way to reach what only the
server can reach (``127.0.0.1``, the private network, a cloud's metadata service). The rule, for every
address a target's host resolves to:

- refused: loopback, private (RFC 1918), shared (100.64.0.0/10), link-local (169.254.0.0/16, fe80::/10),
  unique-local (fc00::/7), multicast, reserved, unspecified (0.0.0.0, ::), documentation and benchmarking
  ranges, IPv4 addresses embedded in IPv6 ones (``::ffff:127.0.0.1``, 6to4, NAT64) judged as IPv4 — in short
  anything that is not a global unicast address — and the cloud metadata hosts (:data:`METADATA_HOSTS`,
  :data:`METADATA_ADDRESSES`);
- allowed: every other (global) address, and any address inside one of the networks of the allowlist
  (:class:`TargetPolicy`; ``ductape serve --webhook-allow 127.0.0.0/8``, ``$DUCTAPE_WEBHOOK_ALLOW``,
  ``Ductape(webhook_allow=[...])``). A metadata host name is allowed only when the allowlist holds
  169.254.169.254.

A host is allowed only when *every* address it resolves to is. Webhooks are checked when created (a host
that does not resolve then is accepted: the delivery checks again) and before each delivery, which then
connects to the address that was checked (so a DNS answer that changes in between cannot redirect it).

:func:`answer_snippet` is the one place that decides what of a target's answer is kept (in a delivery's
``last_error``): at most :data:`SNIPPET_CHARS` characters, control characters removed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct

from ductape_jobs.errors import TargetRefused, ValidationError
from ductape_jobs.redaction import Secrets, mask_webhook_url, redact_webhook_url

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Host names of cloud metadata services (compared case-insensitively, without a trailing dot).
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
     "metadata.azure.internal", "metadata.internal"}
)  # fmt: skip
#: Addresses of cloud metadata services (AWS, GCP, Azure, OpenStack; AWS IPv6; ECS tasks; Alibaba; Oracle).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192")
)
_METADATA_V4 = ipaddress.ip_address("169.254.169.254")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: The most characters of a target's answer that a delivery keeps.
SNIPPET_CHARS = 200


def parse_networks(values: Iterable[str] | str | None, field: str = "webhook_allow") -> tuple[Network, ...]:
    """CIDRs (``"127.0.0.0/8"``, ``"::1/128"``, a bare address) from a list or a comma/space separated string;
    ``ValidationError`` naming ``field`` for one that is not a network."""
    if values is None:
        return ()
    items = values.replace(",", " ").split() if isinstance(values, str) else list(values)
    networks: list[Network] = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError as exc:
            raise ValidationError(field, f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8): {exc}") from None
    return tuple(networks)


class TargetPolicy(Struct, frozen=True):
    """Which addresses requests may go to: global unicast ones, plus those inside ``allow`` (see the module)."""

    allow: tuple[Network, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str] | str | None) -> TargetPolicy:
        return cls(parse_networks(allow))

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused, or ``None`` when it is allowed."""
        if any(address in net for net in self.allow if net.version == address.version):
            return None
        judged = _embedded_ipv4(address) or address
        if judged is not address and any(judged in net for net in self.allow if net.version == 4):
            return None
        if address in METADATA_ADDRESSES or judged in METADATA_ADDRESSES:
            return "a cloud metadata address"
        for kind, flag in (
            ("a loopback", judged.is_loopback),
            ("an unspecified", judged.is_unspecified),
            ("a link-local", judged.is_link_local),
            ("a multicast", judged.is_multicast),
            ("a private", judged.is_private),
            ("a reserved", judged.is_reserved),
            ("a site-local", isinstance(judged, ipaddress.IPv6Address) and judged.is_site_local),
            ("a relay anycast", judged in _RELAY_6TO4),
        ):
            if flag:
                return f"{kind} address"
        if not judged.is_global:
            return "not a global address"
        return None

    def check_host(self, host: str) -> Address | None:
        """Refuse (``TargetRefused``) a metadata host name or a literal address the policy refuses; returns the
        literal address, ``None`` for a name (which must then be resolved)."""
        name = host.strip("[]").rstrip(".").lower()
        try:
            address: Address = ipaddress.ip_address(name.partition("%")[0])
        except ValueError:
            if name in METADATA_HOSTS and not any(_METADATA_V4 in net for net in self.allow if net.version == 4):
                raise TargetRefused(f"{host} is a cloud metadata host") from None
            # RFC 6761: every such name is the loopback, whether or not a resolver here answers for it
            # (an allowed 127.0.0.0/8 admits them: they resolve there; an allowed ::1 alone does not)
            loopback_allowed = any(_LOOPBACK_V4 in net for net in self.allow if net.version == 4)
            if (name == "localhost" or name.endswith(".localhost")) and not loopback_allowed:
                raise TargetRefused(f"{host} is a loopback name") from None
            return None
        reason = self.refusal(address)
        if reason is not None:
            raise TargetRefused(f"{address} is {reason}")
        return address

    def check_addresses(self, host: str, addresses: Iterable[Address]) -> list[Address]:
        """``addresses`` (what ``host`` resolved to), or ``TargetRefused`` naming the first refused one."""
        found = list(dict.fromkeys(addresses))
        for address in found:
            reason = self.refusal(address)
            if reason is not None:
                raise TargetRefused(f"{host} resolves to {address}, {reason}")
        return found

    def check_url(self, url: str, *, field: str = "url") -> None:
        """For creating a target: ``ValidationError`` naming ``field`` when the URL's host is refused (resolved
        here; a host that does not resolve here is let through: the delivery resolves and checks it again)."""
        try:
            host, port = _host_port(url)
            if self.check_host(host) is not None:
                return
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError, ValueError):
                return
            self.check_addresses(host, _addresses(infos))
        except TargetRefused as exc:
            raise ValidationError(field, f"{exc}; targets must be public addresses {self.hint()}") from None

    async def resolve(self, url: str) -> Address:
        """For sending: the address to connect to, checked; ``TargetRefused`` when refused. A host that does not
        resolve raises ``OSError`` (a transient failure)."""
        host, port = _host_port(url)
        literal = self.check_host(host)
        if literal is not None:
            return literal
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = self.check_addresses(host, _addresses(infos))
        if not found:
            raise OSError(f"{host} resolves to no address")
        return found[0]

    def hint(self) -> str:
        if self.allow:
            return f"or inside the allowlist ({', '.join(map(str, self.allow))})"
        return "(allow a network with --webhook-allow CIDR, $DUCTAPE_WEBHOOK_ALLOW or Ductape(webhook_allow=...))"


def answer_snippet(
    body: Any, limit: int = SNIPPET_CHARS, *, secrets: Secrets | None = None, url: str | None = None
) -> str:
    """What a delivery keeps of a target's answer: its text (JSON compacted) with ``secrets`` masked, and what
    the webhook's ``url`` keeps hidden (``redaction.mask_webhook_url``), control and format characters removed,
    whitespace collapsed, cut to at most ``limit`` characters (an ellipsis marks the cut). Every delivery's
    text goes through here: the one place for more redaction."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        body = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    if secrets is not None:
        body = secrets.mask_text(body)
    if url is not None:
        body = mask_webhook_url(body, url)
    text = "".join(" " if ch.isspace() else ch for ch in body if ch.isspace() or not _is_control(ch))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[Address]:
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


_RELAY_6TO4 = ipaddress.ip_network("192.88.99.0/24")  # deprecated 6to4 relays (RFC 7526)
_LOOPBACK_V4 = ipaddress.ip_address("127.0.0.1")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused(f"{redact_webhook_url(url)!r} has an invalid port") from None
    if not parts.hostname:
        raise TargetRefused(f"{redact_webhook_url(url)!r} names no host")
    if port == 0:
        raise TargetRefused(f"{redact_webhook_url(url)!r} names port 0")
    _check_name(parts.hostname)
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _check_name(host: str) -> None:
    """A host is an IP literal or a DNS name of valid labels (IDNA-encoded): no NUL, space, empty label."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare.partition("%")[0])
        return
    except ValueError:
        pass
    try:
        ascii_name = bare.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetRefused(f"{host!r} is not a valid host name") from None
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise TargetRefused(f"{host!r} is not a valid host name")
