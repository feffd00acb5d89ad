"""The one error answer of the HTTP API: a 4xx/5xx with JSON `{"error": code, "detail": why}`.

`error` is a stable code a client can branch on (each code has one status, listed in
`ERRORS` and in the OpenAPI document's ErrorCode); `detail` says what was wrong in
words. Every refusal is logged as `event=http_refused endpoint=... status=...
error=... reason=...`, never with a header. Views refuse by raising `ApiError`
(streamapp/web/base.py); the aiohttp middleware `json_errors` gives the router's own
404/405 the same body, turns an exception no view caught into a logged 500 with that
body, and counts every answer.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from streamapp.web.metrics import HTTP_RESPONSES

logger = logging.getLogger(__name__)

# code -> HTTP status; the OpenAPI document's ErrorCode enum lists the same codes.
ERRORS: Mapping[str, int] = {
    "invalid_request": 400,
    "invalid_records": 400,
    "invalid_version": 400,
    "invalid_dataset": 400,
    "unauthorized": 401,
    "not_found": 404,
    "unknown_version": 404,
    "method_not_allowed": 405,
    "job_running": 409,
    "invalid_artifact": 409,
    "not_writable": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal_error": 500,
    "no_model": 503,
    "broker_unavailable": 503,
    "storage_unavailable": 503,
}
# The code of an error raised by Faust or aiohttp themselves, by its status.
CODE_OF_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    500: "internal_error",
}
LOGGED_CHARS = 200

# A filesystem that refuses writes is the operator's to fix (409); a path name the
# system cannot take is the caller's (400); anything else may pass (503).
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def error_body(error: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer; `extra` adds fields (e.g. per-record errors)."""
    if error not in ERRORS:
        raise ValueError(f"unknown error code {error!r}")
    return {"error": error, "detail": detail, **extra}


def log_refusal(endpoint: str, status: int, error: str, reason: str, remote: str | None) -> None:
    """Every refusal is logged, never with the key that was sent (no header is logged)."""
    logger.warning(
        "event=http_refused endpoint=%s status=%d error=%s remote=%s reason=%r",
        endpoint[:LOGGED_CHARS],
        status,
        error,
        remote,
        reason[:LOGGED_CHARS],
    )


def storage_failure(exc: OSError, doing: str, endpoint: str) -> tuple[str, str]:
    """(error code, detail) of a filesystem error met while `doing`; logged as an event."""
    reason = exc.strerror or type(exc).__name__
    code = errno.errorcode.get(exc.errno or 0, "unknown")
    logger.error(
        "event=http_storage_error endpoint=%s doing=%r errno=%s reason=%s",
        endpoint[:LOGGED_CHARS],
        doing[:LOGGED_CHARS],
        code,
        reason,
    )
    if exc.errno in _NOT_WRITABLE:
        return "not_writable", f"cannot {doing}: {reason} ({code}); the folder is not writable"
    if exc.errno == errno.ENAMETOOLONG:
        return "invalid_request", f"cannot {doing}: {reason}"
    return "storage_unavailable", f"cannot {doing}: {reason} ({code})"


def _route_of(request: web.Request) -> str:
    """The route template (bounded label values), or `unmatched`."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _json_error(request: web.Request, error: str, detail: str, **headers: str) -> web.Response:
    status = ERRORS[error]
    log_refusal(request.path, status, error, detail, request.remote)
    return web.json_response(error_body(error, detail), status=status, headers=headers or None)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The router's 404/405 and any uncaught exception as `error_body` JSON; counts answers."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        code = CODE_OF_STATUS.get(exc.status)
        if code is None:
            raise
        allow = exc.headers.get("Allow")
        if code == "not_found":
            detail = f"no such endpoint: {request.path[:LOGGED_CHARS]}"
        elif allow is not None:
            detail = f"method {request.method} not allowed; allowed: {allow}"
        else:
            detail = exc.reason
        response = _json_error(request, code, detail, **({"Allow": allow} if allow else {}))
    except Exception:
        logger.exception(
            "event=http_unhandled_error endpoint=%s method=%s",
            request.path[:LOGGED_CHARS],
            request.method,
        )
        detail = "unexpected error; see the worker log (event=http_unhandled_error)"
        response = _json_error(request, "internal_error", detail)
    HTTP_RESPONSES.labels(_route_of(request), str(response.status)).inc()
    return response
