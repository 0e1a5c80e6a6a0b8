"""Storage URLs without their secrets, for everything shown to a person, logged or stored.

A storage URL may carry a password (``postgresql://user:secret@host/db``). Every place that
prints, logs or writes a URL passes it through :func:`redact_url`; :func:`redact_text` also
removes the password from text a database driver wrote (an error message may quote it).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

_HIDDEN = "***"


def _is_secret_key(key: str) -> bool:
    """A URL query parameter that carries a password (``?password=``, ``sslpassword``,
    MySQL's ``passwd``, ODBC's ``pwd``)."""
    key = key.lower()
    return "password" in key or key in ("passwd", "pwd")


def _secrets(url: str) -> list[str]:
    """The passwords in ``url``: its ``user:password@`` part and any password query parameter."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return _secrets_by_hand(url)
    found = [] if parsed.password is None else [str(parsed.password)]
    for key, value in parsed.query.items():
        if _is_secret_key(key):
            found += [value] if isinstance(value, str) else list(value)
    return [f for f in found if f]


def _secrets_by_hand(url: str) -> list[str]:
    """``scheme://user:password@host?password=...`` read without SQLAlchemy (for a URL it
    cannot parse)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return []
    found = []
    rest, _, query = rest.partition("?")
    userinfo, at, _ = rest.rpartition("@")
    if at and ":" in userinfo:
        found.append(unquote(userinfo.split(":", 1)[1]))
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and _is_secret_key(unquote(key)):
            found.append(unquote(value))
    return [f for f in found if f]


def redact_url(url: str) -> str:
    """``url`` with its passwords (``user:password@`` and any ``?password=`` parameter)
    replaced by ``***`` (unchanged when it has none).

    Uses SQLAlchemy's own rendering when the URL parses; an unparsable URL still loses its
    secrets, so a typo in a URL never prints one.
    """
    if not _secrets(url):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        query = {k: (_HIDDEN if _is_secret_key(k) else v) for k, v in parsed.query.items()}
        shown = parsed.set(query=query).render_as_string(hide_password=True)
        return shown.replace(quote(_HIDDEN, safe=""), _HIDDEN)  # rendering encodes the stars
    except (ArgumentError, ValueError, TypeError):
        return redact_text(url, url)


def redact_text(text: str, url: str) -> str:
    """``text`` with every occurrence of ``url``'s passwords (raw or URL-encoded) hidden."""
    forms = {
        f for secret in _secrets(url) for f in (secret, quote(secret, safe=""), quote(secret))
    }
    for form in sorted(forms, key=len)[::-1]:
        text = text.replace(form, _HIDDEN)
    return text
