"""Text from services made fit for the CLI contract's one-line messages."""

from __future__ import annotations

REDACTED = "<redacted>"


def one_line(text: str, *, limit: int = 200, secret: str | None = None) -> str:
    """Whitespace collapsed, `secret` masked, cut to `limit` characters.

    EC2's UnauthorizedOperation carries a kilobyte-long encoded policy message and agents can
    echo a request's token back; neither may reach a one-line error as is.
    """
    line = " ".join(text.split())
    if secret:
        line = line.replace(secret, REDACTED)
    return line if len(line) <= limit else line[: limit - 1] + "…"
