"""API keys: who is calling. `API_KEYS` = comma-separated `name:token` pairs; `API_TOKEN` is one more
key named `default`. With no key configured the service is open and every caller is the same client.

A caller's key comes from `Authorization: Bearer <token>` or, for the pages, from the signed session
cookie the login form sets. Tokens are looked up by their SHA-256 digest, so the lookup's timing says
nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from flask import request, session

from digitflow.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_NAME = "default"  # the client API_TOKEN names


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Keys:
    by_digest: dict[bytes, str]  # sha256(token) -> client name

    @property
    def required(self) -> bool:
        return bool(self.by_digest)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        """Parse API_KEYS (and API_TOKEN); a malformed value stops the process with a clear message."""
        pairs: list[tuple[str, str]] = []
        for part in settings.api_keys.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, token = part.partition(":")
            if not sep or not NAME.match(name.strip()) or not token.strip():
                raise ValueError(f"API_KEYS: {name.strip() or part[:20]!r} is not `name:token` "
                                 "(name: letters, digits, _ . -, at most 64)")
            pairs.append((name.strip(), token.strip()))
        if settings.api_token:
            pairs.append((DEFAULT_NAME, settings.api_token))
        by_digest: dict[bytes, str] = {}
        names = [n for n, _ in pairs]
        for name, token in pairs:
            if names.count(name) > 1:
                raise ValueError(f"API_KEYS: the name {name!r} is given twice")
            if _digest(token) in by_digest:
                raise ValueError(f"API_KEYS: {name!r} and {by_digest[_digest(token)]!r} share a token")
            by_digest[_digest(token)] = name
        return cls(by_digest)

    def client(self, token: str) -> str | None:
        """The name of the key `token` is, or None."""
        return self.by_digest.get(_digest(token)) if token else None


def given_token() -> str:
    """The token this request carries: the bearer header, else the page session's."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return session.get("token", "")
