"""The built-in ``http`` action: one HTTP request, its response as the step output.

One :class:`HttpExecutor` holds one pooled :class:`aiohttp.ClientSession`, created on the first
call inside the running loop and closed by :meth:`HttpExecutor.aclose`. The session keeps no
cookies (calls of different workspaces share it) and reads no proxy settings from the environment.

Header values and URLs may carry credentials, so error messages name the host only, and nothing
here logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from opentelemetry.trace import Span

from campaignflow import __version__
from campaignflow.domain.durations import InvalidDuration, parse_duration
from campaignflow.engine.actions import IDEMPOTENCY_HEADER, ActionCall, ActionFailed
from campaignflow.engine.clock import Clock, SystemClock
from campaignflow.observability import tracing
from campaignflow.observability.metrics import integration_request

METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = f"campaignflow/{__version__}"
DETAILS_BODY_CHARS = 2048
_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A response read in full (up to the size cap): lower-cased headers, the body parsed when
    it is JSON (else text), and its first characters as text for error details."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str
    truncated: bool


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    host: str
    headers: dict[str, str]
    body: bytes | None
    timeout_s: float


class HttpExecutor:
    """Performs ``http`` actions over one pooled session; see the module docstring."""

    def __init__(
        self,
        *,
        connection_limit: int = 200,
        default_timeout_s: float = 10.0,
        max_body_bytes: int = 1024 * 1024,
        clock: Clock | None = None,
    ) -> None:
        self._connection_limit = connection_limit
        self._default_timeout_s = default_timeout_s
        self._max_body_bytes = max_body_bytes
        self._clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def execute(self, call: ActionCall) -> dict[str, Any]:
        request = _build_request(call, self._default_timeout_s)
        answer = await self._exchange(request, ("http", "request"))
        return self._outcome(request, answer)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout_s: float | None = None,
        labels: tuple[str, str] = ("http", "request"),
    ) -> HttpAnswer:
        """One exchange over the pooled session, whatever the status (connectors classify it
        themselves); transport failures raise :class:`ActionFailed` naming the host only.
        ``labels`` (provider, operation) name the exchange in the request metrics."""
        _, host = _url_and_host(url)
        request = _Request(
            method=method,
            url=url,
            host=host,
            headers=dict(headers),
            body=body,
            timeout_s=timeout_s or self._default_timeout_s,
        )
        return await self._exchange(request, labels)

    async def _exchange(self, request: _Request, labels: tuple[str, str]) -> HttpAnswer:
        """Every outbound request goes through here (the http action and every connector),
        so this is where they are counted, timed and traced.

        Traced, the exchange is a client span, with ``traceparent`` sent on so a provider that
        traces continues the trace; the span names the host, provider, operation and status
        only (the URL's path and query may carry the person's data)."""
        if not tracing.enabled():
            return await self._measured(request, labels, None)
        provider, operation = labels
        with tracing.tracer().start_as_current_span(
            f"{request.method} {provider} {operation}",
            kind=tracing.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": request.host,
                "campaignflow.provider": provider,
                "campaignflow.operation": operation,
            },
            record_exception=False,
        ) as span:
            headers = dict(request.headers)
            tracing.inject_into(headers)
            return await self._measured(dataclasses.replace(request, headers=headers), labels, span)

    async def _measured(
        self, request: _Request, labels: tuple[str, str], span: Span | None
    ) -> HttpAnswer:
        started = time.perf_counter()
        status = "error"
        try:
            answer = await self._exchange_once(request)
        except ActionFailed as exc:
            status = "timeout" if isinstance(exc.__cause__, TimeoutError) else "error"
            if span is not None:
                span.set_status(tracing.error_status(status))
            raise
        else:
            status = str(answer.status)
            if span is not None:
                span.set_attribute("http.response.status_code", answer.status)
                if answer.status >= 400:
                    span.set_status(tracing.error_status(f"HTTP {answer.status}"))
        finally:
            integration_request(*labels, status, time.perf_counter() - started)
        return answer

    async def _exchange_once(self, request: _Request) -> HttpAnswer:
        session = self._session_for_call()
        with _map_exceptions(request):
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                skip_auto_headers=("Content-Type",),  # no octet-stream type on an empty POST
                allow_redirects=request.method == "GET",
                timeout=aiohttp.ClientTimeout(total=request.timeout_s),
            ) as response:
                raw, truncated = await _read_capped(response, self._max_body_bytes)
        return HttpAnswer(
            status=response.status,
            headers=_lowered_headers(response),
            body=_parse_body(response, raw, truncated),
            text=_text(response, raw[: DETAILS_BODY_CHARS * 4])[:DETAILS_BODY_CHARS],
            truncated=truncated,
        )

    def retry_after(self, answer: HttpAnswer) -> float | None:
        """The answer's ``Retry-After`` in seconds from now, if it has a usable one."""
        return parse_retry_after(answer.headers.get("retry-after"), self._clock.now())

    async def aclose(self) -> None:
        """Close the pooled connections; later calls fail (retryably) instead of reopening."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _session_for_call(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ActionFailed("the HTTP executor is closed", retryable=True)
        loop = asyncio.get_running_loop()
        if self._session is not None and loop is not self._loop:
            raise RuntimeError("HttpExecutor is bound to another event loop")
        if self._session is None:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._default_timeout_s),
                trust_env=False,
            )
        return self._session

    def _outcome(self, request: _Request, answer: HttpAnswer) -> dict[str, Any]:
        status = answer.status
        if 200 <= status < 300 or status == 304:
            return {
                "status": status,
                "headers": answer.headers,
                "body": answer.body,
                "truncated": answer.truncated,
            }
        retryable = retryable_status(status)
        raise ActionFailed(
            f"HTTP {status} from {request.host}",
            retryable=retryable,
            retry_after_s=self.retry_after(answer) if retryable else None,
            details={"status": status, "body": answer.text},
        )


def retryable_status(status: int) -> bool:
    """Whether an answer's status is worth retrying: 408, 425, 429 and every 5xx."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delay = (moment - now).total_seconds()
    return delay if delay >= 0 else None


def _build_request(call: ActionCall, default_timeout_s: float) -> _Request:
    params = call.params
    method = str(params.get("method") or "POST").upper()
    if method not in METHODS:
        raise _invalid(f"unsupported HTTP method {method[:20]!r}")
    url, host = _url_and_host(params.get("url"))
    body = _body(params.get("body"))
    return _Request(
        method=method,
        url=url,
        host=host,
        headers=_headers(params.get("headers") or {}, call.idempotency_key, body is not None),
        body=body,
        timeout_s=_timeout_s(params.get("timeout"), default_timeout_s),
    )


def _url_and_host(url: Any) -> tuple[str, str]:
    """The URL and its ``host[:port]`` (for messages: no user info, path or query)."""
    if not isinstance(url, str):
        raise _invalid("the URL must be a string")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid("the URL is not valid") from exc
    if parts.scheme not in ("http", "https"):
        raise _invalid(f"unsupported URL scheme {parts.scheme[:20]!r}; use http or https")
    if not parts.hostname:
        raise _invalid("the URL has no host")
    return url, parts.hostname if port is None else f"{parts.hostname}:{port}"


def _headers(given: Any, idempotency_key: str, has_body: bool) -> dict[str, str]:
    if not isinstance(given, Mapping):
        raise _invalid("headers must be an object of strings")
    headers: dict[str, str] = {}
    for name, value in given.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise _invalid(f"header {str(name)[:100]!r} must be a string")
        if _FORBIDDEN_IN_HEADERS.search(name) or _FORBIDDEN_IN_HEADERS.search(value):
            raise _invalid(f"header {name[:100]!r} contains a line break or NUL")  # not the value
        headers[name] = value
    present = {name.lower() for name in headers}
    if IDEMPOTENCY_HEADER.lower() not in present:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    if "user-agent" not in present:
        headers["User-Agent"] = USER_AGENT
    if has_body and "content-type" not in present:
        headers["Content-Type"] = "application/json"
    return headers


def _body(body: Any) -> bytes | None:
    if body is None:
        return None
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise _invalid("the body cannot be encoded as JSON") from exc


def _timeout_s(timeout: Any, default: float) -> float:
    if timeout is None:
        return default
    try:
        seconds = parse_duration(str(timeout)).approximate_seconds
    except InvalidDuration as exc:
        raise _invalid(f"invalid timeout: {exc.message}") from exc
    if seconds <= 0:
        raise _invalid("the timeout must be longer than zero")
    return seconds


def _invalid(message: str) -> ActionFailed:
    return ActionFailed(f"invalid http request: {message}", retryable=False)


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body, cut to ``limit`` bytes, and whether it was cut (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit], size > limit


@contextlib.contextmanager
def _map_exceptions(request: _Request) -> Iterator[None]:
    """Translate aiohttp's exceptions; messages name the host, never the URL or headers."""
    host = request.host
    try:
        yield
    except TimeoutError as exc:  # asyncio's and aiohttp's timeouts alike
        message = f"no response from {host} within {request.timeout_s:g} s"
        raise ActionFailed(message, retryable=True) from exc
    except (aiohttp.InvalidURL, aiohttp.RedirectClientError, aiohttp.TooManyRedirects) as exc:
        raise ActionFailed(f"bad URL or redirect from {host}", retryable=False) from exc
    except (aiohttp.ClientConnectionError, ConnectionError) as exc:
        message = f"connection to {host} failed: {_reason(exc)}"
        raise ActionFailed(message, retryable=True) from exc
    except aiohttp.ClientPayloadError as exc:
        raise ActionFailed(f"the response from {host} was cut off", retryable=True) from exc
    except aiohttp.ClientError as exc:
        message = f"HTTP exchange with {host} failed: {type(exc).__name__}"
        raise ActionFailed(message, retryable=True) from exc
    except ValueError as exc:  # e.g. a line break in a header value
        raise ActionFailed("invalid http request: a header is malformed", retryable=False) from exc


def _reason(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.strerror:
        return exc.os_error.strerror
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _lowered_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _parse_body(response: aiohttp.ClientResponse, raw: bytes, truncated: bool) -> Any:
    if not raw:
        return None
    mimetype = response.content_type
    if not truncated and (mimetype == "application/json" or mimetype.endswith("+json")):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(raw)
    return _text(response, raw)


def _text(response: aiohttp.ClientResponse, raw: bytes) -> str:
    try:
        return raw.decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")
