"""AWS Signature Version 4 (header signing), as a pure function of the request and the time.

AWS refuses a request whose signature it cannot reproduce byte for byte, and says no more than
``SignatureDoesNotMatch``; so this module follows the published algorithm literally and is
tested against AWS's own test-suite vectors and, over generated requests, against botocore's
``SigV4Auth``. The clock is a parameter: the caller signs with the time of sending (AWS allows
five minutes of skew), and tests sign with the suite's fixed time.

What is signed: the method, the normalised and URI-encoded path, the canonical query, every
header the request carries except hop-by-hop ones and ``User-Agent`` (which proxies rewrite;
botocore leaves out the same list), ``Host`` (derived from the URL as the HTTP client sends it),
``X-Amz-Date``, ``X-Amz-Security-Token`` for temporary credentials, and the SHA-256 of the body.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers that intermediaries may add, drop or rewrite: signing them would break the signature.
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key, or temporary credentials (with the STS session token)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def signed_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now_unix: int,
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials) and
    ``Authorization``; a stale ``Authorization`` or date among ``headers`` is replaced."""
    amz_date = datetime.fromtimestamp(now_unix, UTC).strftime("%Y%m%dT%H%M%SZ")
    replaced = {"authorization", "x-amz-date", "x-amz-security-token"}
    result = {name: value for name, value in headers.items() if name.lower() not in replaced}
    result["X-Amz-Date"] = amz_date
    if credentials.session_token:
        result["X-Amz-Security-Token"] = credentials.session_token
    to_sign = _headers_to_sign(url, result)
    request = canonical_request(method, url, to_sign, body)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, amz_date, scope, _sha256(request.encode())))
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    result["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(sorted(to_sign))}, Signature={signature}"
    )
    return result


def canonical_request(
    method: str, url: str, to_sign: Mapping[str, list[str]], body: bytes | None
) -> str:
    """The canonical request of the algorithm; ``to_sign`` maps lower-case header names to
    their values."""
    parts = urlsplit(url)
    names = sorted(to_sign)
    header_lines = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in to_sign[name])}\n" for name in names
    )
    return "\n".join(
        (
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            header_lines,
            ";".join(names),
            _sha256(body or b""),
        )
    )


def canonical_path(path: str) -> str:
    """Dot segments and empty segments removed (as every AWS service but S3 expects), then
    URI-encoded; an already-encoded path is encoded once more, as AWS does on its side."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def canonical_query(query: str) -> str:
    """Each name and value decoded and re-encoded (RFC 3986 unreserved characters kept), the
    pairs sorted by name, then value."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_access_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _headers_to_sign(url: str, headers: Mapping[str, str]) -> dict[str, list[str]]:
    to_sign: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower() not in UNSIGNED_HEADERS:
            to_sign.setdefault(name.lower(), []).append(value)
    to_sign.setdefault("host", [_host(url)])
    return to_sign


def _host(url: str) -> str:
    """What the HTTP client sends as ``Host``: no user info, no default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _encode(text: str) -> str:
    return quote(unquote(text), safe="-_.~")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
