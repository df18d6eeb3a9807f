"""A moto server that writes down every AWS API request it answers: who asked, which service, which action.

The IAM policy test (test_iam_policy.py) compares these requests with docs/iam/ops-box-policy.json. What is
recorded is what reached the server, read from the request itself, not from the client that sent it:
- the access key and the signing service, from the SigV4 `Authorization` header
  (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`);
- the action, from `X-Amz-Target` (JSON protocols: SSM, ACM) or from the `Action` parameter of the query
  string or the form body (query protocols: EC2, ELBv2, ElastiCache, STS);
- the request parameters (form fields or the JSON body), for the policy's resource and condition checks.
Requests without a signature (moto's own /moto-api) are not AWS calls and are not recorded.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[0-9]{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


@dataclass(frozen=True)
class ApiCall:
    """One signed request as the server received it."""

    access_key: str
    region: str
    service: str  # the signing name, which is also the IAM prefix of the services used here
    action: str
    params: dict[str, Any] = field(hash=False, compare=False)
    status: int = field(default=0, hash=False, compare=False)

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.action}"


def parse_request(environ: dict[str, Any], body: bytes) -> ApiCall | None:
    """The API call of one WSGI request, or None when it is not a signed AWS request."""
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        return None
    access_key, region, service = found.groups()
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    params: dict[str, Any]
    if target:
        action = target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
    else:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params = {k: v[0] if len(v) == 1 else v for k, v in {**query, **form}.items()}
        action = str(params.get("Action", ""))
    return ApiCall(access_key, region, service, action, params) if action else None


class RecordingMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose WSGI app records each signed request in `calls` (thread-safe)."""

    def __init__(self, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        # One access-log line per request would bury a failing test's own report.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.calls: list[ApiCall] = []
        self._lock = threading.Lock()
        # Called with each call before moto answers it; what it returns joins the call's params (keys "__...").
        # It may ask this same server (another thread answers); its own calls should use another access key.
        self.annotate: Callable[[ApiCall], dict[str, Any]] | None = None

    def _record(self, app: Callable) -> Callable:
        def recorded(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            call = parse_request(environ, body)
            if call is not None and self.annotate is not None:
                try:
                    call.params.update(self.annotate(call))
                except Exception as error:  # reported by the policy test; never breaks the call itself
                    call.params["__annotate_error"] = f"{type(error).__name__}: {error}"
            status: list[int] = []

            def start(status_line: str, headers: list, exc_info: Any = None) -> Callable:
                status.append(int(status_line.split()[0]))
                return (
                    start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)
                )

            response = app(environ, start)
            if call is not None:
                with self._lock:
                    self.calls.append(
                        ApiCall(call.access_key, call.region, call.service, call.action, call.params, *status[:1])
                    )
            return response

        return recorded

    def _server_entry(self) -> None:
        # ThreadedMotoServer._server_entry, with the app wrapped by the recorder.
        app = self._record(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def calls_by(self, access_key: str) -> list[ApiCall]:
        with self._lock:
            return [c for c in self.calls if c.access_key == access_key]
