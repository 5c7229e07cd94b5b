"""Redis URLs as flinq reads them: a password never shown, and the store's
key prefix as a URL argument (?prefix=NAME). Needs no redis-py."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact", "split_prefix"]


def redact(url: str) -> str:
    """url with its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def split_prefix(url: str, prefix: str) -> tuple[str, str]:
    """(url without a prefix= argument, the prefix it names, else prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    named = [value for key, value in query if key == "prefix"]
    if not named:
        return url, prefix
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return urlunsplit(parts._replace(query=rest)), named[-1]
