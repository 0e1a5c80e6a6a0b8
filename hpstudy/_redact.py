"""Storage URLs without their secrets, for everything shown to a person, logged or stored.

A storage URL may carry a password (``postgresql://user:secret@host/db``). Every place that
prints, logs or writes a URL passes it through :func:`redact_url`; :func:`redact_text` also
removes the password from text a database driver wrote (an error message may quote it).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

_HIDDEN = "***"


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError, TypeError):
        return _password_by_hand(url)
    return None if password is None else str(password)


def _password_by_hand(url: str) -> str | None:
    """``scheme://user:password@host`` read without SQLAlchemy (for a URL it cannot parse)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return unquote(userinfo.split(":", 1)[1]) or None


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (unchanged when it has none).

    Uses SQLAlchemy's own rendering when the URL parses; an unparsable URL still loses any
    ``user:password@`` part, so a typo in a URL never prints the secret.
    """
    password = _password(url)
    if not password:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return redact_text(url, url)


def redact_text(text: str, url: str) -> str:
    """``text`` with every occurrence of ``url``'s password (raw or URL-encoded) hidden."""
    password = _password(url)
    if not password:
        return text
    for form in sorted({password, quote(password, safe=""), quote(password)}, key=len)[::-1]:
        text = text.replace(form, _HIDDEN)
    return text
