"""The lab's CloudFront edge: an HTTPS server on 127.0.0.1 that serves the distribution moto holds from its
S3 origin, as CloudFront would.

It reads moto's backends in-process (no API call, as the lab reads target health): the distribution (the one
tagged Environment=<the lab's environment>, or the only one), its S3 origin and origin access control, the
bucket's policy and objects, and the distribution's invalidations. It honours:
- the default root object (`/` serves it) and the custom error responses (a 403/404 from the origin answered
  with the configured page and code: the SPA fallback);
- the object's Cache-Control, and a cache at the edge that keeps each object for its TTL, bounded by the
  default behaviour's MinTTL/MaxTTL (DefaultTTL when the object says nothing), until an invalidation of its
  path (moto's create_invalidation; `/*` patterns too): a stale index.html stays served as on CloudFront;
- the OAC: an object is fetched only when the origin has an origin access control and the bucket policy allows
  the `cloudfront.amazonaws.com` service principal with `AWS:SourceArn` equal to this distribution's ARN.
  Otherwise the edge answers 403, as S3 refuses CloudFront: a bucket made public instead does not work here.
- `ViewerProtocolPolicy`: the server speaks HTTPS only (certificate from the lab CA for 127.0.0.1/localhost).

moto 5.2.5 drops an origin's OriginAccessControlId (and its S3OriginConfig) from what it stores and
returns; `patch()` keeps both, as AWS does.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.backends import get_backend
from moto.cloudfront import models as cloudfront_models

from ec2_fleet_dev.lab.config import ACCOUNT_ID

log = logging.getLogger(__name__)

_orig_origin_init = cloudfront_models.Origin.__init__


def _origin_init(self: Any, origin: dict[str, Any]) -> None:
    _orig_origin_init(self, origin)
    self.origin_access_control_id = origin.get("OriginAccessControlId", "")
    if "S3OriginConfig" in origin:
        self.s3_origin_config = {"OriginAccessIdentity": origin["S3OriginConfig"].get("OriginAccessIdentity", "")}


def patch() -> None:
    """Keep an origin's OriginAccessControlId and S3OriginConfig in moto (process-wide, idempotent)."""
    cloudfront_models.Origin.__init__ = _origin_init


@dataclass
class Cached:
    status: int
    headers: dict[str, str]
    body: bytes
    stored: float  # time.time()
    ttl: float


def _max_age(cache_control: str) -> float | None:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() in ("s-maxage", "max-age") and value.strip().isdigit():
            return float(value)
        if name.lower() in ("no-cache", "no-store", "private"):
            return 0.0
    return None


def _ttl(cache_control: str, behaviour: Any) -> float:
    """CloudFront's rule: the object's max-age bounded by MinTTL and MaxTTL, DefaultTTL when it has none."""
    lo, default, hi = float(behaviour.min_ttl or 0), float(behaviour.default_ttl or 0), float(behaviour.max_ttl or 0)
    age = _max_age(cache_control)
    if age is None:
        return default
    return max(lo, min(age, hi)) if hi else max(lo, age)


def _policy_allows(policy: Any, bucket: str, key: str, distribution_arn: str) -> bool:
    """Whether the bucket policy lets CloudFront (this distribution, by AWS:SourceArn) GetObject the key."""
    if not policy:
        return False
    doc = json.loads(policy.decode() if isinstance(policy, bytes) else policy)
    statements = doc.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    object_arn = f"arn:aws:s3:::{bucket}/{key}"
    allowed = False
    for st in statements:
        services = (st.get("Principal") or {}).get("Service", []) if isinstance(st.get("Principal"), dict) else []
        services = [services] if isinstance(services, str) else services
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if "cloudfront.amazonaws.com" not in services:
            continue
        if not any(fnmatch.fnmatchcase("s3:GetObject", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(object_arn, r) for r in resources):
            continue
        conditions = st.get("Condition", {})
        source = (conditions.get("StringEquals") or {}).get("AWS:SourceArn") or (conditions.get("ArnLike") or {}).get(
            "AWS:SourceArn"
        )
        source_ok = source == distribution_arn or (isinstance(source, list) and distribution_arn in source)
        if st.get("Effect") == "Deny" and source_ok:
            return False
        if st.get("Effect") == "Allow" and source_ok:
            allowed = True
    return allowed


class Edge:
    """The distribution, its cache and the HTTPS server."""

    def __init__(self, host: str, port: int, cert: Path, key: Path, environment: str = "lab") -> None:
        patch()  # before any distribution is made: the lab makes its edge before it reports ready
        self.host, self.port, self.environment = host, port, environment
        self.cache: dict[tuple[str, str], Cached] = {}  # (distribution id, path) -> response
        self.seen_invalidations: set[str] = set()
        self.lock = threading.Lock()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.server: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # --- moto's state, in-process
    def distribution(self) -> Any | None:
        backend = get_backend("cloudfront")[ACCOUNT_ID]["global"]
        dists = list(backend.distributions.values())
        tagged = []
        for d in dists:
            tags = {t["Key"]: t["Value"] for t in backend.tagger.list_tags_for_resource(d.arn)["Tags"]}
            if tags.get("Environment") == self.environment:
                tagged.append(d)
        if len(tagged) == 1:
            return tagged[0]
        return dists[0] if len(dists) == 1 else None

    def _apply_invalidations(self, dist: Any) -> None:
        backend = get_backend("cloudfront")[ACCOUNT_ID]["global"]
        for inv in backend.invalidations.get(dist.id, []):
            if inv.id in self.seen_invalidations:
                continue
            self.seen_invalidations.add(inv.id)
            for path in inv.paths:
                for cached in [k for k in self.cache if k[0] == dist.id and fnmatch.fnmatchcase(k[1], path)]:
                    del self.cache[cached]

    def _origin_fetch(self, dist: Any, key: str) -> tuple[int, dict[str, str], bytes]:
        config = dist.distribution_config
        origin = config.Origins["Items"][0]
        match = re.match(r"^(?P<bucket>[a-z0-9.-]+)\.s3[.-]", origin.domain_name)
        if not match:
            return 502, {"Content-Type": "text/plain"}, b"origin is not an S3 bucket\n"
        bucket_name = match.group("bucket")
        s3 = get_backend("s3")[ACCOUNT_ID]["aws"]
        try:
            bucket = s3.get_bucket(bucket_name)
        except Exception:
            return 404, {"Content-Type": "text/plain"}, b"NoSuchBucket\n"
        # CloudFront signs with the OAC; S3 lets it in only if the policy allows this distribution.
        if not getattr(origin, "origin_access_control_id", "") or not _policy_allows(
            bucket.policy, bucket_name, key, dist.arn
        ):
            return 403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>\n"
        obj = s3.get_object(bucket_name, key) if key else None
        if obj is None:
            # S3 answers 403 (not 404) to a principal without s3:ListBucket; CloudFront's error responses map it.
            return 403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>\n"
        headers = {
            "Content-Type": obj.metadata.get("content-type", "application/octet-stream"),
            "ETag": obj.etag,
            "Last-Modified": obj.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        if obj.metadata.get("cache-control"):
            headers["Cache-Control"] = obj.metadata["cache-control"]
        return 200, headers, bytes(obj.value)

    def _error_response(self, dist: Any, status: int) -> tuple[int, str] | None:
        responses = dist.distribution_config.CustomErrorResponses
        for item in responses.get("Items") or []:
            if int(item["ErrorCode"]) == status and item.get("ResponsePagePath"):
                return int(item.get("ResponseCode") or status), item["ResponsePagePath"]
        return None

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """The response to GET path (no query string), through the cache."""
        dist = self.distribution()
        if dist is None:
            return 503, {"Content-Type": "text/plain"}, b"no CloudFront distribution for the lab\n"
        if not dist.distribution_config.Enabled:
            return 403, {"Content-Type": "text/plain"}, b"distribution disabled\n"
        behaviour = dist.distribution_config.DefaultCacheBehavior
        if path == "/" and dist.distribution_config.DefaultRootObject:
            path = "/" + dist.distribution_config.DefaultRootObject
        with self.lock:
            self._apply_invalidations(dist)
            hit = self.cache.get((dist.id, path))
            if hit and time.time() - hit.stored < hit.ttl:
                return hit.status, {**hit.headers, "X-Cache": "Hit from lab-edge"}, hit.body
        status, headers, body = self._origin_fetch(dist, path.lstrip("/"))
        if status >= 400:
            mapped = self._error_response(dist, status)
            if mapped:
                code, page = mapped
                page_status, page_headers, page_body = self.get_cached_page(dist, page)
                if page_status == 200:
                    status, headers, body = code, page_headers, page_body
            return status, {**headers, "X-Cache": "Error from lab-edge"}, body
        ttl = _ttl(headers.get("Cache-Control", ""), behaviour)
        with self.lock:
            if ttl > 0:
                self.cache[(dist.id, path)] = Cached(status, headers, body, time.time(), ttl)
        return status, {**headers, "X-Cache": "Miss from lab-edge"}, body

    def get_cached_page(self, dist: Any, page: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            hit = self.cache.get((dist.id, page))
            if hit and time.time() - hit.stored < hit.ttl:
                return hit.status, hit.headers, hit.body
        status, headers, body = self._origin_fetch(dist, page.lstrip("/"))
        if status == 200:
            ttl = _ttl(headers.get("Cache-Control", ""), dist.distribution_config.DefaultCacheBehavior)
            with self.lock:
                if ttl > 0:
                    self.cache[(dist.id, page)] = Cached(status, headers, body, time.time(), ttl)
        return status, headers, body

    # --- the server
    def start(self) -> None:
        edge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _serve(self, with_body: bool) -> None:
                edge.requests += 1
                path = self.path.split("?", 1)[0] or "/"
                try:
                    status, headers, body = edge.get(path)
                except Exception:
                    log.exception("edge: GET %s failed", path)
                    status, headers, body = 502, {"Content-Type": "text/plain"}, b"edge error\n"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve(True)

            def do_HEAD(self) -> None:
                self._serve(False)

        server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, name="edge", daemon=True)
        self.thread.start()
        log.info("Edge (CloudFront) at %s", self.url)

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
