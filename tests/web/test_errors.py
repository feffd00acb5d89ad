"""The one error body: codes and statuses, filesystem errors, the router's own 404/405 and
an uncaught exception, on a bare aiohttp app with the worker's middleware (no broker)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from streamapp.web.errors import ERRORS, error_body, json_errors, storage_failure


def test_an_error_body_has_a_known_code_and_a_detail() -> None:
    assert error_body("rate_limited", "wait", extra=1) == {
        "error": "rate_limited",
        "detail": "wait",
        "extra": 1,
    }
    with pytest.raises(ValueError, match="unknown error code"):
        error_body("oops", "x")
    assert all(400 <= status < 600 for status in ERRORS.values())


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (errno.EROFS, "not_writable"),
        (errno.EACCES, "not_writable"),
        (errno.ENAMETOOLONG, "invalid_request"),
        (errno.ENOSPC, "storage_unavailable"),
        (errno.EIO, "storage_unavailable"),
    ],
)
def test_filesystem_errors_are_answered_with_their_reason_and_logged(
    number: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    exc = OSError(number, "some reason", "/models/ACTIVE")
    with caplog.at_level(logging.ERROR, logger="streamapp.web.errors"):
        answer = storage_failure(exc, "write ACTIVE", "/api/v1/rul/models/v1/activate")
    assert answer[0] == code and "cannot write ACTIVE: some reason" in answer[1]
    assert "event=http_storage_error endpoint=/api/v1/rul/models/v1/activate" in caplog.text
    assert f"errno={errno.errorcode[number]}" in caplog.text


async def _answers() -> list[tuple[int, dict, str | None]]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/ok", ok)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        answers = []
        for method, path in (
            ("GET", "/ok"),
            ("GET", "/nowhere"),
            ("PUT", "/ok"),
            ("GET", "/broken"),
        ):
            response = await client.request(method, path)
            answers.append((response.status, await response.json(), response.headers.get("Allow")))
        return answers


def test_the_router_s_errors_and_uncaught_exceptions_get_the_json_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def answered(route: str, status: str) -> float:
        labels = {"route": route, "status": status}
        return REGISTRY.get_sample_value("streamapp_http_responses_total", labels) or 0.0

    counted = [("/ok", "200"), ("unmatched", "404"), ("unmatched", "405"), ("/broken", "500")]
    before = [answered(*labels) for labels in counted]
    with caplog.at_level(logging.WARNING, logger="streamapp.web.errors"):
        ok, missing, method, broken = asyncio.run(_answers())
    assert [answered(*labels) - was for labels, was in zip(counted, before, strict=True)] == [1] * 4
    assert ok == (200, {"ok": True}, None)
    assert missing[:2] == (404, {"error": "not_found", "detail": "no such endpoint: /nowhere"})
    assert method[0] == 405 and method[1]["error"] == "method_not_allowed"
    assert "GET" in method[2] and "PUT not allowed" in method[1]["detail"]
    assert broken[0] == 500 and broken[1]["error"] == "internal_error"
    assert "a bug" not in json.dumps(broken[1])  # the reason stays in the log
    assert "event=http_unhandled_error endpoint=/broken" in caplog.text and "a bug" in caplog.text
