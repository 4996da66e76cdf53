"""The bootstrap API token of the embedded mode.

`campaignflow up` must not be open, even on a laptop: on first start it generates a random token,
keeps it in the data directory readable by the owner only, and prints it once. Production
(`campaignflow serve`) never generates one; it must be configured (see ``Settings.require_secure``).
The full model — workspaces, OAuth 2.0 clients, scoped API keys — replaces this in the security
issue; this module stays as the embedded bootstrap.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKEN_FILE_NAME = "api-token"  # noqa: S105 — a file name, not a secret
TOKEN_PREFIX = "cf_"  # noqa: S105 — a visible prefix that makes leaked tokens greppable


@dataclass(frozen=True, slots=True)
class BootstrapToken:
    value: str
    path: Path
    created: bool


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def ensure_bootstrap_token(data_dir: Path) -> BootstrapToken:
    """Read the embedded token, creating it (mode 0600) on first start."""
    path = data_dir / TOKEN_FILE_NAME
    if path.exists():
        return BootstrapToken(path.read_text(encoding="utf-8").strip(), path, created=False)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = generate_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return BootstrapToken(token, path, created=True)


def tokens_match(presented: str, expected: str) -> bool:
    """Compare in constant time so the token cannot be guessed byte by byte."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
