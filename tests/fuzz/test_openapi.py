"""schemathesis against the OpenAPI 3.1 document at ``/api/openapi.json``, on a real daemon:
every operation with generated valid and invalid input. Zero 5xx, every status and body as the
document says, never a traceback; the daemon healthy afterwards. And the document lists every
HTTP route the app serves (the WebSockets are in the AsyncAPI one)."""

from __future__ import annotations

import json
import re

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import EXAMPLES, FuzzTarget
from transport.routes.api_docs import API_DIR

schema = schemathesis.openapi.from_path(API_DIR / "openapi.json")
OPENAPI = json.loads((API_DIR / "openapi.json").read_text())
ASYNCAPI = json.loads((API_DIR / "asyncapi.json").read_text())


def no_traceback(_ctx: object, response: schemathesis.Response, _case: schemathesis.Case) -> bool:
    assert b"Traceback" not in response.content, response.content[:500]
    return True


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation(case: schemathesis.Case, target: FuzzTarget) -> None:
    case.call_and_validate(
        base_url=target.url, timeout=60,
        checks=[schemathesis.checks.not_a_server_error, status_code_conformance,
                content_type_conformance, response_schema_conformance, no_traceback])


def test_the_daemon_is_healthy_after_the_fuzzing(target: FuzzTarget) -> None:
    body = requests.get(f"{target.url}/api/health?refresh=true", timeout=30).json()
    assert body["system_status"] == "healthy", body["components"]
    assert target.daemon.proc.poll() is None
    assert not [line for line in target.daemon.lines if "Traceback" in line]


def _routes() -> set[tuple[str, str]]:
    from transport.app import ROUTE_MODULES

    app = web.Application()
    for module in ROUTE_MODULES:
        module.add_routes(app)
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        out.add((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    return out


def test_the_documents_cover_every_route() -> None:
    websockets = {channel["address"] for channel in ASYNCAPI["channels"].values()}
    http = {(m.upper(), p) for p, ops in OPENAPI["paths"].items() for m in ops if m != "parameters"}
    served = {r for r in _routes() if r[1] not in websockets}
    assert served == http, {"undocumented": served - http, "documented, not served": http - served}
    assert websockets == {p for m, p in _routes() if m == "GET"} - {p for _, p in http}


@pytest.mark.parametrize("name", ["openapi.json", "asyncapi.json"])
def test_the_documents_are_served_as_written(target: FuzzTarget, name: str) -> None:
    served = requests.get(f"{target.url}/api/{name}", timeout=10)
    assert served.status_code == 200 and served.json() == json.loads((API_DIR / name).read_text())
