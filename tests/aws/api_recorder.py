"""A moto server that writes down every AWS API request it answers: who asked, which service, which action.

The IAM policy test (test_iam_policy.py) compares these requests with docs/iam/ops-box-policy.json. What is
recorded is what reached the server, read from the request itself, not from the client that sent it:
- the access key and the signing service, from the SigV4 `Authorization` header
  (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`);
- the action, from `X-Amz-Target` (JSON protocols: SSM, ACM) or from the `Action` parameter of the query
  string or the form body (query protocols: EC2, ELBv2, ElastiCache, STS);
- for the REST protocols of S3 and CloudFront (no Action, no X-Amz-Target), the operation whose botocore
  requestUri template fits the method, the path and the query keys best (`PUT /{Bucket}?versioning` is
  PutBucketVersioning), the bucket, key or distribution id from the path (path-style as moto is addressed at
  127.0.0.1, or the bucket from a virtual-host `Host` header) and the tags of a create call's XML body;
- the request parameters (form fields or the JSON body), for the policy's resource and condition checks.
Requests without a signature (moto's own /moto-api) are not AWS calls and are not recorded.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

import botocore.model
import botocore.session
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[0-9]{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


# Signing names that are not the service's IAM prefix (CloudWatch signs as "monitoring").
IAM_PREFIX = {"monitoring": "cloudwatch"}


@dataclass(frozen=True)
class ApiCall:
    """One signed request as the server received it."""

    access_key: str
    region: str
    service: str  # the IAM prefix: the signing name, except where IAM_PREFIX maps it
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
    service = IAM_PREFIX.get(service, service)
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    params: dict[str, Any]
    if service in REST_SERVICES:
        action, params = _parse_rest(service, environ, body)
        if not action:  # kept, so that the policy test can name the request it cannot check
            params["__request"] = (
                f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}?{environ.get('QUERY_STRING', '')}"
            )
            return ApiCall(access_key, region, service, "", params)
    elif target:
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


# --- REST protocols (S3: rest-xml without Action or X-Amz-Target; CloudFront: rest-xml) -----------------
# The operation is found as botocore builds the request for it, backwards: the method, the path against each
# operation's requestUri template, the query keys the template names literally ("?versioning",
# "?list-type=2") and the query keys and headers the operation's input requires (UploadPart: partNumber and
# uploadId; CopyObject: x-amz-copy-source). Of the operations that fit, the most specific wins: the most such
# query keys and headers, then the most literal path characters (GET /{Bucket}?list-type=2 is ListObjectsV2,
# GET /{Bucket} ListObjects, PUT /{Bucket}/{Key+} with x-amz-copy-source CopyObject, without it PutObject).
# botocore appends "x-id=OP" to some S3 templates; a request may lack it, so it only breaks ties.
REST_SERVICES = {"s3": "s3", "cloudfront": "cloudfront"}  # signing name -> botocore service model


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]  # literal keys (with the value the template requires, if any)
    required_query: tuple[str, ...]  # keys of required members the client puts in the query string
    required_headers: tuple[str, ...]  # lower-case names of required members sent as headers
    x_id: str
    literal: int  # literal characters of the path template


def _route(operation: botocore.model.OperationModel) -> _Route:
    template, _, query_text = operation.http["requestUri"].partition("?")
    pattern, literal = "", 0
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{"):
            name = piece[1:-1]
            pattern += f"(?P<{name.rstrip('+')}>{'.+' if name.endswith('+') else '[^/]+'})"
        else:
            pattern += re.escape(piece)
            literal += len(piece)
    query, x_id = [], ""
    for item in filter(None, query_text.split("&")):
        key, eq, value = item.partition("=")
        if key == "x-id":
            x_id = value
        else:
            query.append((key, value if eq else None))
    required_query, required_headers = [], []
    shape = operation.input_shape
    for member in shape.required_members if shape is not None else []:
        where = shape.members[member].serialization
        name = where.get("name", member)
        if where.get("location") == "querystring":
            required_query.append(name)
        elif where.get("location") == "header":
            required_headers.append(name.lower())
    return _Route(
        operation.name,
        operation.http["method"],
        re.compile(pattern + "/?$"),
        tuple(query),
        tuple(required_query),
        tuple(required_headers),
        x_id,
        literal,
    )


@functools.cache
def _routes(model: str) -> list[_Route]:
    service = botocore.session.get_session().get_service_model(model)
    return [_route(service.operation_model(name)) for name in service.operation_names]


def match_rest(
    service: str, method: str, path: str, query: dict[str, list[str]], headers: frozenset[str] | set[str] = frozenset()
) -> tuple[str, dict[str, str]]:
    """(operation, path labels) of a REST request, or ("", {}) when no operation of the model fits.
    headers: the lower-case names of the request's headers."""
    best: tuple[tuple[int, int, int], _Route, dict[str, str]] | None = None
    for route in _routes(REST_SERVICES[service]):
        if (
            route.method != method
            or not all(key in query and (value is None or value in query[key]) for key, value in route.query)
            or not all(key in query for key in route.required_query)
            or not all(name in headers for name in route.required_headers)
        ):
            continue
        found = route.path.match(path)
        if not found:
            continue
        specific = len(route.query) + len(route.required_query) + len(route.required_headers)
        rank = (specific, route.literal, int(bool(route.x_id) and route.x_id in query.get("x-id", [])))
        if best is None or rank > best[0]:
            best = (rank, route, found.groupdict())
    return (best[1].operation, best[2]) if best else ("", {})


_S3_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]*?)\.(?:s3[.-][a-z0-9.-]*|localhost)(?::\d+)?$")


def _xml_objects(body: bytes) -> list[dict[str, str]]:
    """The <Object><Key/><VersionId/></Object> entries of an S3 DeleteObjects body."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return [
        {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "Object"
    ]


def _xml_tags(body: bytes) -> dict[str, str]:
    """<Tag><Key>..</Key><Value>..</Value></Tag> pairs of an XML body."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    tags = {}
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Tag":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
            if "Key" in fields:
                tags[fields["Key"]] = fields.get("Value", "")
    return tags


def _parse_rest(service: str, environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, Any]]:
    """The operation of an S3 or CloudFront request and its params: the path labels (Bucket, Key, Id,
    DistributionId), the query, the request's tags (CreateDistributionWithTags, TagResource) and the objects
    (Key, VersionId) of an S3 DeleteObjects, plus __copy_source for CopyObject."""
    # WSGI gives the path percent-decoded, as latin-1 text of its bytes.
    path = (environ.get("PATH_INFO", "") or "/").encode("latin-1").decode("utf-8", "replace")
    host = environ.get("HTTP_HOST", "")
    virtual = _S3_VIRTUAL_HOST.match(host) if service == "s3" else None
    if virtual:  # virtual-hosted style: the bucket is in the Host header, the path is the key
        path = "/" + virtual.group("bucket") + path
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    headers = {k[5:].replace("_", "-").lower() for k in environ if k.startswith("HTTP_")}
    headers |= {k.replace("_", "-").lower() for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(k)}
    operation, labels = match_rest(service, environ.get("REQUEST_METHOD", ""), path, query, headers)
    params: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
    params.update(labels)
    if operation in ("CopyObject", "UploadPartCopy"):
        params["__copy_source"] = unquote(environ["HTTP_X_AMZ_COPY_SOURCE"])
    if operation == "DeleteObjects":
        params["Objects"] = _xml_objects(body)
    if operation in ("CreateDistributionWithTags", "TagResource") and body:
        params["Tags"] = _xml_tags(body)
    return operation, params


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
