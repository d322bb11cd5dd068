"""Connection URLs: built with their password percent-encoded, and refused at start when they cannot be parsed.

A password is the part of a URL most likely to hold reserved characters: `redis://:p@ss:w/rd#1@redis:6379/0`
is read by every URL parser as host `ss`, port `w`, path `/rd` and a fragment, so workers failed far from the
cause. Settings check each URL here and name the variable; deploy files pass the password on its own
(`CHORUS_REDIS_PASSWORD`) and `with_password` puts it in, encoded.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

#: What to tell an operator whose URL holds a reserved character unencoded.
ENCODE_HINT = "percent-encode reserved characters of the user and password (@ %40, : %3A, / %2F, # %23, ? %3F)"


def check_url(url: str, *, schemes: tuple[str, ...], host_required: bool) -> str:
    """Return `url` if it parses as a URL of one of `schemes`; raise ValueError saying what is wrong.

    The message never repeats the URL: it may hold a password.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric or out-of-range port (a password's ':' read as one)
    except ValueError:
        # urllib's message quotes the bad part, which is usually a piece of the password.
        raise ValueError(f"cannot be parsed (its port is not a number from 0 to 65535): {ENCODE_HINT}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if parts.fragment or url.endswith("#"):
        raise ValueError(f"has a '#' fragment, which a connection URL never has: {ENCODE_HINT}")
    if host_required and not parts.hostname:
        raise ValueError(f"names no host: {ENCODE_HINT}")
    if parts.scheme in ("redis", "rediss"):
        database = parts.path.lstrip("/")
        if database and not database.isdigit():
            raise ValueError(f"the path must be a Redis database number (/0), not /{database}: {ENCODE_HINT}")
    return url


def has_password(url: str) -> bool:
    """Whether `url` carries a password in its user info."""
    return urlsplit(url).password is not None


def without_password(url: str) -> str:
    """`url` fit for a log line or a banner: its password, if any, shown as `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def with_password(url: str, password: str) -> str:
    """`url` with `password` (raw, any characters) percent-encoded into its user info, replacing any there."""
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redis_url(host: str, port: int, database: int, password: str = "", *, tls: bool = False) -> str:
    """A Redis URL with the password percent-encoded (`p@ss:w/rd#1` becomes `p%40ss%3Aw%2Frd%231`)."""
    url = f"{'rediss' if tls else 'redis'}://{host}:{port}/{database}"
    return with_password(url, password) if password else url
