"""Callback URL checks against server-side request forgery (webhooks; no framework here).

A callback URL is checked when a job is submitted (web/webhooks.py) and again before every delivery
(worker/webhooks.py), which then connects to an address this check returned, never to a second lookup.
Only public destinations pass: every address a host name resolves to must be public, and numbers
written in other forms (`http://2130706433/`, `http://0x7f.1/`) are refused outright. Receivers named
in WEBHOOK_ALLOWED_HOSTS (`host[:port]`, comma-separated) pass whatever their addresses.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
INVALID, NOT_ALLOWED = "invalid_callback_url", "callback_url_not_allowed"
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986, nothing else (no spaces, no \)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# Named reasons (the most specific network's wins), then the ipaddress predicates catch the rest.
_REFUSED = [(ipaddress.ip_network(net), why) for net, why in [
    ("169.254.169.254/32", "a cloud metadata service"), ("169.254.170.2/32", "a cloud metadata service"),
    ("100.100.100.200/32", "a cloud metadata service"), ("192.0.0.192/32", "a cloud metadata service"),
    ("fd00:ec2::254/128", "a cloud metadata service"),
    ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"), ("100.64.0.0/10", "carrier-grade NAT"),
    ("169.254.0.0/16", "link-local"), ("192.0.0.0/24", "reserved for protocols"),
    ("192.0.2.0/24", "documentation"), ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"), ("198.18.0.0/15", "benchmarking"), ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("::ffff:0:0/96", "IPv4-mapped"),
    ("::/96", "IPv4-compatible"), ("::/8", "reserved"), ("64:ff9b::/96", "NAT64"), ("64:ff9b:1::/48", "NAT64"),
    ("100::/64", "discard-only"), ("2001::/23", "reserved for protocols (Teredo, benchmarking, ...)"),
    ("2001:db8::/32", "documentation"), ("2002::/16", "6to4"), ("3fff::/20", "documentation"),
    ("fc00::/7", "private (unique local)"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
]]


class CallbackRefused(ValueError):
    """A callback URL that is malformed (`invalid_callback_url`) or leads somewhere not allowed."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Callback:
    """A parsed callback URL: where to connect and what to send as Host and request target."""

    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int
    target: str  # path and query
    explicit_port: bool

    @property
    def literal(self) -> IP | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host


def address_refusal(ip: IP) -> str | None:
    """Why an address is not a public destination (None: it is one)."""
    if ip.version == 6 and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%")[0])
    matches = [(net.prefixlen, why) for net, why in _REFUSED if ip.version == net.version and ip in net]
    if matches:
        return max(matches)[1]  # the most specific network's reason
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return "reserved"
    return None if ip.is_global else "not public"


def odd_ipv4(host: str) -> str | None:
    """If `host` is an IPv4 address written other than as four plain decimals (what inet_aton and browsers
    would still accept: 2130706433, 0x7f000001, 017700000001, 127.1, a trailing dot), what it means."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if not parts or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    try:
        if str(ipaddress.IPv4Address(host)) == host:
            return None  # the plain form
    except ValueError:
        pass
    try:
        values = [int(p, 16) if p.startswith("0x") else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
                  for p in parts]
    except ValueError:
        return "no address"
    if len(values) > 4 or any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return "no address"
    number = 0
    for v in values[:-1]:
        number = number * 256 + v
    number = number * 256 ** (5 - len(values)) + values[-1]
    return str(ipaddress.IPv4Address(number))


def parse_callback(url: str) -> Callback:
    """Check a callback URL's form (no lookups): http(s), a host, no credentials, at most 2048 characters."""
    if not isinstance(url, str) or not url:
        raise CallbackRefused(INVALID, "`callback_url` must be an http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(INVALID, f"`callback_url` is limited to {MAX_URL_LENGTH} characters")
    if not _URL_CHARS.fullmatch(url):
        raise CallbackRefused(INVALID, "`callback_url` may contain only URL characters (percent-encode the rest, "
                                       "write international host names as xn--)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(INVALID, f"`callback_url` is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused(INVALID, "`callback_url` must use http or https")
    if "@" in parts.netloc:
        raise CallbackRefused(INVALID, "`callback_url` must not contain credentials; receivers check the signature")
    host = (parts.hostname or "").lower()
    if not host or port == 0:
        raise CallbackRefused(INVALID, "`callback_url` needs a host (and a port from 1 to 65535, if any)")
    if "[" in parts.netloc:
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise CallbackRefused(INVALID, "`callback_url` has an invalid IPv6 address") from None
    else:
        meaning = odd_ipv4(host)
        if meaning is not None:
            raise CallbackRefused(NOT_ALLOWED, f"write IPv4 addresses as four decimal numbers: {host!r} "
                                               f"means {meaning}")
        name = host.removesuffix(".")
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise CallbackRefused(INVALID, "`callback_url` has an invalid host name")
        host = name
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Callback(parts.scheme, host, port or default, target, port is not None and port != default)


@lru_cache(maxsize=8)
def parse_allowed(setting: str) -> frozenset[tuple[str, int | None]]:
    """WEBHOOK_ALLOWED_HOSTS -> {(host, port or None for any port)}; a malformed entry raises ValueError."""
    allowed = set()
    for entry in (e.strip() for e in setting.split(",")):
        if not entry:
            continue
        try:
            cb = parse_callback(f"http://{entry}/")
        except CallbackRefused as exc:
            raise ValueError(f"WEBHOOK_ALLOWED_HOSTS entry {entry!r}: {exc.message}") from None
        allowed.add((cb.host, cb.port if urlsplit(f"http://{entry}/").port else None))
    return frozenset(allowed)


def is_allowed(cb: Callback, allowed: str) -> bool:
    """Named in WEBHOOK_ALLOWED_HOSTS (with this port, or with no port)."""
    names = parse_allowed(allowed)
    return (cb.host, None) in names or (cb.host, cb.port) in names


def resolve(cb: Callback) -> list[IP]:
    """Every address the host stands for (an address literal stands for itself)."""
    if cb.literal is not None:
        return [cb.literal]
    try:
        infos = socket.getaddrinfo(cb.host, cb.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackRefused(INVALID, f"the callback host {cb.host!r} does not resolve ({exc})") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def check_addresses(host: str, addresses: list[IP]) -> None:
    """Refuse unless there is an address and every one is public."""
    if not addresses:
        raise CallbackRefused(INVALID, f"the callback host {host!r} has no address")
    for ip in addresses:
        why = address_refusal(ip)
        if why is not None:
            shown = host if host == ip.compressed else f"{host} ({ip.compressed})"
            raise CallbackRefused(NOT_ALLOWED, f"callbacks go to public addresses only: {shown} is {why}; "
                                               "WEBHOOK_ALLOWED_HOSTS names receivers allowed anyway")


def check_callback(url: str, allowed: str) -> tuple[Callback, list[IP]]:
    """The whole check: form, then WEBHOOK_ALLOWED_HOSTS or every resolved address public.
    Returns the addresses to connect to; raises CallbackRefused."""
    cb = parse_callback(url)
    addresses = resolve(cb)
    if not is_allowed(cb, allowed):
        check_addresses(cb.host, addresses)
    return cb, addresses
