"""The load balancer's CloudWatch metrics, from HAProxy's own per-request log.

HAProxy (balancer.py) sends one raw line per request to a UDP socket on 127.0.0.1 that this module binds (an
ephemeral port, with a 4 MiB receive buffer: a unix datagram socket queues only net.unix.max_dgram_qlen, 10,
lines, and HAProxy dropped about 0.4 % of the lines of a 4-client burst there):
`lab-alb-request FRONTEND BACKEND SERVER STATUS Tr Ta TERMINATION`. Every
EC2_FLEET_LAB_METRICS_SECONDS (default 5) the controller calls `publish`, which sends what the complete
seconds since the last call hold to moto's CloudWatch (put_metric_data, namespace AWS/ApplicationELB,
StorageResolution 1, one datum per second) as an ALB does:

- per load balancer (`LoadBalancer=app/NAME/ID`): RequestCount, HTTPCode_Target_2XX_Count,
  HTTPCode_Target_5XX_Count, HTTPCode_ELB_5XX_Count, TargetResponseTime;
- per target group (`TargetGroup=targetgroup/NAME/ID`, `LoadBalancer=app/NAME/ID`): RequestCount,
  HTTPCode_Target_2XX_Count, HTTPCode_Target_5XX_Count, TargetResponseTime; and on every call, traffic or
  not, HealthyHostCount and UnHealthyHostCount from what HAProxy's checks decided (moto_lab.BOOK).

A 5xx is the target's when HAProxy received the server's response headers (Tr >= 0), else the load
balancer's own (no server, connection refused, timeout). TargetResponseTime is Tr in seconds, sent as
Values/Counts so percentiles can be computed. As on AWS the request metrics exist only for seconds with
requests; within such a second the code counts are sent even when 0. The same numbers go to a
`MetricStore` that alarms.py evaluates (moto's own statistics are not fit for it, see alarms.py).
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ec2_fleet_dev.lab.balancer import LOG_TAG, BackendSpec, listener_load_balancers

log = logging.getLogger(__name__)

NAMESPACE = "AWS/ApplicationELB"
REQUEST_METRICS = ("RequestCount", "HTTPCode_Target_2XX_Count", "HTTPCode_Target_5XX_Count",
                   "HTTPCode_ELB_5XX_Count", "TargetResponseTime")  # fmt: skip
HEALTH_METRICS = ("HealthyHostCount", "UnHealthyHostCount")
PUBLISHED = frozenset(REQUEST_METRICS + HEALTH_METRICS)
RECEIVE_BUFFER = 4 << 20  # bytes the kernel may queue for the log socket (capped by net.core.rmem_max)
KEEP_SECONDS = 3 * 3600  # what the store keeps (the longest alarm window the lab evaluates)
# (name, value) pairs: sorted in the store; published TargetGroup first, as ALB lists them and aws_monitoring's
# alarms name them (moto 5 matches a query's dimensions to a datum's in order: its Dimension sorts wrongly).
Dims = tuple[tuple[str, str], ...]


def dims_of(dimensions: list[dict[str, str]] | None) -> Dims:
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


def arn_suffix(arn: str, marker: str) -> str:
    """app/NAME/ID of a load balancer ARN, targetgroup/NAME/ID of a target group's (CloudWatch's dimension)."""
    at = arn.find(f":{marker}/") if marker == "targetgroup" else arn.find(f"/{marker}/")
    return arn[at + 1:] if at >= 0 else ""


@dataclass(frozen=True)
class Request:
    frontend: str
    backend: str
    server: str | None  # None: HAProxy chose no server (<NOSRV>)
    status: int
    tr_ms: int  # -1: no response headers from a server
    ta_ms: int
    termination: str

    @property
    def target_answered(self) -> bool:
        return self.server is not None and self.tr_ms >= 0


def parse(line: str) -> Request | None:
    """One log line (anything before the tag, e.g. a syslog header, is skipped); None if it is not one."""
    at = line.find(LOG_TAG + " ")
    if at < 0:
        return None
    parts = line[at:].split()
    if len(parts) < 8:
        return None
    try:
        return Request(parts[1], parts[2], None if parts[3] == "<NOSRV>" else parts[3], int(parts[4]),
                       int(parts[5]), int(parts[6]), parts[7])  # fmt: skip
    except ValueError:
        return None


@dataclass
class Sample:
    """What one metric holds for one second: its values and how often each came."""

    values: Counter = field(default_factory=Counter)

    def add(self, value: float, count: int = 1) -> None:
        self.values[value] += count


class MetricStore:
    """The lab's copy of what it published: (namespace, metric, dims) -> second -> Sample. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.series: dict[tuple[str, str, Dims], dict[int, Sample]] = defaultdict(dict)

    def add(self, namespace: str, name: str, dims: Dims, second: int, values: Counter) -> None:
        with self.lock:
            sample = self.series[(namespace, name, dims)].setdefault(second, Sample())
            for value, count in values.items():
                sample.add(value, count)

    def values(self, namespace: str, name: str, dims: Dims, start: int, end: int) -> list[tuple[float, int]]:
        """Every (value, count) of seconds start <= s < end; [] when none was published."""
        with self.lock:
            series = self.series.get((namespace, name, dims), {})
            return [pair for s, sample in series.items() if start <= s < end for pair in sample.values.items()]

    def prune(self, before: int) -> None:
        with self.lock:
            for series in self.series.values():
                for second in [s for s in series if s < before]:
                    del series[second]


class Metrics:
    """Receives HAProxy's request log on a UDP port of 127.0.0.1 and publishes (see the module's docstring)."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.pending: dict[int, list[Request]] = defaultdict(list)  # second -> requests that ended in it
        self.received = 0
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> str:
        """Binds the log socket and starts reading it; returns its address as HAProxy's `log` takes it."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.thread = threading.Thread(target=self._receive, name="metrics-log", daemon=True)
        self.thread.start()
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def stop(self) -> None:
        sock, self.sock = self.sock, None
        if self.thread:
            self.thread.join(2)
        if sock:
            sock.close()

    def _receive(self) -> None:
        while (sock := self.sock) is not None:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            request = parse(data.decode(errors="replace"))
            if request:
                with self.lock:
                    self.pending[int(time.time())].append(request)
                    self.received += 1

    def take(self, before: int) -> dict[int, list[Request]]:
        """The requests of complete seconds (< before), removed from the pending ones."""
        with self.lock:
            done = {s: r for s, r in self.pending.items() if s < before}
            for s in done:
                del self.pending[s]
        return done

    def publish(self, cloudwatch: Any, elbv2: Any, specs: dict[str, BackendSpec], health: dict) -> int:
        """One pass: the complete seconds' request metrics and the hosts' health now. elbv2: moto's backend;
        specs: balancer.specs (target group ARN -> its backend); health: moto_lab.BOOK.health. Returns
        the number of datums sent."""
        now = int(time.time())
        by_backend = {spec.name: arn for arn, spec in specs.items()}
        frontend_lb = {f"lab-alb-{p}": arn for p, arn in listener_load_balancers(elbv2).items()}
        data: list[dict[str, Any]] = []
        for second, requests in sorted(self.take(now).items()):
            for dims, metrics in aggregate(requests, by_backend, frontend_lb).items():
                data += self._datums(second, dims, metrics)
        tgs = dict(list(elbv2.target_groups.items()))
        for arn in specs:
            tg = tgs.get(arn)
            if tg is None:
                continue
            states = [h.state for key, h in health.items() if key[0] == arn]
            counts = {"HealthyHostCount": states.count("healthy"), "UnHealthyHostCount": states.count("unhealthy")}
            for lb_arn in sorted(getattr(tg, "load_balancer_arns", []) or []):
                dims = (("TargetGroup", arn_suffix(arn, "targetgroup")), ("LoadBalancer", arn_suffix(lb_arn, "app")))
                data += self._datums(now, dims, {m: Counter({float(v): 1}) for m, v in counts.items()})
        for chunk in range(0, len(data), 500):
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[chunk:chunk + 500])
        self.store.prune(now - KEEP_SECONDS)
        return len(data)

    def _datums(self, second: int, dims: Dims, metrics: dict[str, Counter]) -> list[dict[str, Any]]:
        stamp = datetime.fromtimestamp(second, timezone.utc)
        out = []
        for name, values in metrics.items():
            self.store.add(NAMESPACE, name, tuple(sorted(dims)), second, values)
            pairs = sorted(values.items())
            datum: dict[str, Any] = {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                "Timestamp": stamp,
                "StorageResolution": 1,
                "Unit": "Seconds" if name == "TargetResponseTime" else "Count",
            }
            if name == "TargetResponseTime":
                datum.update(Values=[v for v, _ in pairs], Counts=[float(c) for _, c in pairs])
            else:
                datum["Value"] = math.fsum(v * c for v, c in pairs)
            out.append(datum)
        return out


def aggregate(requests: list[Request], by_backend: dict[str, str], frontend_lb: dict[str, str]) -> dict[Dims, dict]:
    """One second's requests as metric values per dimension set: dims -> metric -> Counter(value -> count).
    Counts are one value (the count); TargetResponseTime the response times (ms rounded, in seconds).
    Requests of a frontend that plays no load balancer's listener are not counted (no ALB would see them)."""
    out: dict[Dims, dict[str, Counter]] = {}
    for r in requests:
        lb_arn = frontend_lb.get(r.frontend)
        if not lb_arn:
            continue
        lb = (("LoadBalancer", arn_suffix(lb_arn, "app")),)
        sets = [lb]
        tg_arn = by_backend.get(r.backend)
        if tg_arn:
            sets.append((("TargetGroup", arn_suffix(tg_arn, "targetgroup")), *lb))  # ALB's order (and moto's, below)
        for dims in sets:
            m = out.setdefault(dims, {"RequestCount": Counter(), "HTTPCode_Target_2XX_Count": Counter(),
                                      "HTTPCode_Target_5XX_Count": Counter()})  # fmt: skip
            if len(dims) == 1:
                m.setdefault("HTTPCode_ELB_5XX_Count", Counter())
            m["RequestCount"][0.0] += 1
            if r.target_answered:
                m["TargetResponseTime"] = m.get("TargetResponseTime", Counter())
                m["TargetResponseTime"][r.tr_ms / 1000] += 1
                if 200 <= r.status < 300:
                    m["HTTPCode_Target_2XX_Count"][0.0] += 1
                elif r.status >= 500:
                    m["HTTPCode_Target_5XX_Count"][0.0] += 1
            elif r.status >= 500 and len(dims) == 1:
                m["HTTPCode_ELB_5XX_Count"][0.0] += 1
    # Counters above count under the key 0.0; a count metric's value is that count.
    return {dims: {name: (c if name == "TargetResponseTime" else Counter({float(c[0.0]): 1}))
                   for name, c in m.items()} for dims, m in out.items()}  # fmt: skip
