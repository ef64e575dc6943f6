"""Text from services made fit for the CLI contract's one-line messages."""

from __future__ import annotations

import json
from urllib.parse import quote

REDACTED = "<redacted>"


def one_line(text: str, *, limit: int = 200, secret: str | None = None) -> str:
    """Whitespace collapsed, `secret` masked, cut to `limit` characters.

    EC2's UnauthorizedOperation carries a kilobyte-long encoded policy message and agents can
    echo a request's token back; neither may reach a one-line error as is.
    """
    # Mask before folding: a token with a run of spaces no longer matches once the run is one space.
    line = " ".join(mask(text, secret).split())
    if secret:
        line = mask(line, " ".join(secret.split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def mask(text: str, secret: str | None) -> str:
    """`text` with every form of `secret` a message can carry replaced: as is, escaped as `repr`
    and JSON write it (a token with a control character, a bytes repr), and percent-encoded."""
    if not secret:
        return text
    for form in secret_forms(secret):
        text = text.replace(form, REDACTED)
    return text


def secret_forms(secret: str) -> list[str]:
    """The spellings of `secret` that could appear in a message, longest first."""
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        quote(secret, safe=""),
    }
    return sorted((f for f in forms if f), key=len, reverse=True)
