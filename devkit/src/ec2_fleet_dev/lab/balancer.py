"""HAProxy as the ALB's data plane.

One backend per target group in moto, with the target group's health check (path, interval,
timeout, thresholds, matcher); two frontends, as the ALB's two listeners: HTTP on
127.0.0.1:<lb port> and HTTPS on 127.0.0.1:<lb https port> (a certificate from the lab CA for
127.0.0.1, localhost and the ALB's DNS name), each doing what the load balancer's listener of that
protocol in moto does: forward to its target group, or redirect to HTTPS with a 301.
Registered targets are added with the runtime API (`add server`): a new target stays in
maintenance (no check, no traffic, `initial`) for the registration delay, as an ALB takes a while
to spread a registration to its nodes, then its checks start with health forced down so it gets
no traffic until it passed the healthy threshold. Deregistered ones are set to `drain` (no new
connections, in-flight ones finish) for the target group's deregistration delay, then deleted.
What HAProxy sees is written to the HealthBook that moto's describe_target_health answers from.
The registration delay is the lab's setting, or `registration_delay` in `<state dir>/balancer.json`
while the lab runs (read on every registration).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import moto_lab
from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.lab.moto_lab import BOOK, Health, Key

log = logging.getLogger(__name__)

HEALTHY = Health("healthy")
LOG_TAG = "lab-alb-request"  # first word of each request's log line (metrics.py)
RUNTIME_FILE = "balancer.json"  # in the state dir: settings a test changes while the lab runs
Groups = tuple[tuple[str, int], ...]  # a forward action's (target group ARN, weight), in the action's order
Route = tuple[str, Groups]  # ("forward", groups) or ("redirect", ())
MAX_WEIGHT = 999  # an ALB's highest target group weight
MAP_SLOTS = 1_000_000  # a frontend draws rand(MAP_SLOTS) per request; its map gives each group its share of slots
NO_TARGET = "lab-no-target"  # the backend of a share that has no target group in the lab: 503


@dataclass(frozen=True)
class BackendSpec:
    """The HAProxy view of one target group."""

    arn: str
    name: str  # HAProxy backend name
    path: str
    interval: int
    timeout: int
    rise: int
    fall: int
    matcher: str
    check_port: int | None  # None: the traffic port
    checks: bool
    delay: float

    def server_options(self) -> str:
        if not self.checks:
            return ""
        port = f" port {self.check_port}" if self.check_port else ""
        return f"check inter {self.interval}s fall {self.fall} rise {self.rise}{port}"


def spec_of(tg: Any) -> BackendSpec:
    port = str(tg.health_check_port or "traffic-port")
    return BackendSpec(
        arn=tg.arn,
        name="tg-" + re.sub(r"[^A-Za-z0-9_.-]", "_", tg.name),
        path=tg.health_check_path or "/",
        interval=int(tg.health_check_interval_seconds),
        timeout=int(tg.health_check_timeout_seconds),
        rise=int(tg.healthy_threshold_count),
        fall=int(tg.unhealthy_threshold_count),
        matcher=str((getattr(tg, "matcher", None) or {}).get("HttpCode", "200")),
        check_port=None if port == "traffic-port" else int(port),
        checks=bool(tg.health_check_enabled) and (tg.health_check_protocol or "HTTP").upper() in ("HTTP", "HTTPS"),
        delay=moto_lab.deregistration_delay(tg),
    )


def listener_routes(elbv2: Any) -> dict[str, Route]:
    """What the lab's two frontends do, from the load balancers' listeners in moto: per protocol
    ("http", "https"), the listener on the standard port (80, 443) first, then any; the first
    load balancer by name wins."""
    return {protocol: route for protocol, (route, _) in _listeners(elbv2).items()}


def listener_load_balancers(elbv2: Any) -> dict[str, str]:
    """Per frontend ("http", "https"): the ARN of the load balancer whose listener it plays (metrics.py's
    LoadBalancer dimension)."""
    return {protocol: lb_arn for protocol, (_, lb_arn) in _listeners(elbv2).items()}


def forward_groups(data: dict[str, Any]) -> Groups:
    """The target groups of a forward action and their weights, as an ALB reads the action: the ForwardConfig's
    TargetGroups when it has any (a missing Weight is 1, as on AWS; moto stores 1 too), else TargetGroupArn
    with the whole share. moto accepts what AWS refuses, so the lab reads it the nearest AWS way: a weight
    above 999 counts as 999, below 0 as 0, a target group named twice once (its first weight)."""
    groups: dict[str, int] = {}
    for entry in (data.get("ForwardConfig") or {}).get("TargetGroups") or []:
        arn = str(entry.get("TargetGroupArn") or "")
        if not arn or arn in groups:
            continue
        try:
            weight = int(entry.get("Weight", 1))
        except (TypeError, ValueError):
            weight = 1
        if not 0 <= weight <= MAX_WEIGHT:
            log.warning("Weight %s of %s outside 0-%s (AWS refuses it): the lab uses %s", weight, arn, MAX_WEIGHT,
                        min(max(weight, 0), MAX_WEIGHT))  # fmt: skip
        groups[arn] = min(max(weight, 0), MAX_WEIGHT)
    if not groups and data.get("TargetGroupArn"):
        groups[str(data["TargetGroupArn"])] = 1
    return tuple(groups.items())


def weight_map(groups: Groups, backends: dict[str, str]) -> list[tuple[str, str]]:
    """The HAProxy map a frontend picks its backend from, per request: `rand(MAP_SLOTS)` falls in one range
    `FIRST:LAST` of slots, each group's range as wide as its weight's share of the sum (to 1/MAP_SLOTS);
    a group of weight 0 has none. backends: target group ARN -> backend name; a group the lab has no
    backend for (deleted, or not of target type instance) is NO_TARGET, which answers 503. Every weight 0:
    no range, so every request is NO_TARGET's."""
    total = sum(weight for _, weight in groups)
    entries: list[tuple[str, str]] = []
    start = cumulative = 0
    for arn, weight in groups:
        if weight <= 0:
            continue
        cumulative += weight
        end = cumulative * MAP_SLOTS // total
        entries.append((f"{start}:{end - 1}", backends.get(arn, NO_TARGET)))
        start = end
    return entries


def _listeners(elbv2: Any) -> dict[str, tuple[Route, str]]:
    candidates: dict[str, list[tuple[int, int, Route, str]]] = {"http": [], "https": []}
    for rank, lb in enumerate(sorted(list(elbv2.load_balancers.values()), key=lambda b: b.name)):
        for listener in list(lb.listeners.values()):
            protocol = str(listener.protocol).lower()
            if protocol not in candidates:
                continue
            standard = 80 if protocol == "http" else 443
            for action in listener.default_actions:
                data = action.data
                route: Route | None = None
                if action.type == "forward" and (groups := forward_groups(data)):
                    route = ("forward", groups)
                elif action.type == "redirect" and str((data.get("RedirectConfig") or {}).get("Protocol", "")).upper() \
                        in ("HTTPS", "#{PROTOCOL}"):
                    route = ("redirect", ())
                if route:
                    candidates[protocol].append((rank, int(listener.port) != standard, route, lb.arn))
                    break
    return {protocol: min(found)[2:] for protocol, found in candidates.items() if found}


def _shape(routes: dict[str, Route]) -> dict[str, str]:
    """What HAProxy's configuration holds of the routes: per frontend, forward, redirect or nothing (the target
    groups and weights of a forward live in its map)."""
    return {protocol: kind for protocol, (kind, _) in routes.items()}


@dataclass
class Server:
    backend: str
    name: str
    ip: str
    port: int
    added: float  # when its checks started (after the registration delay)
    ever_healthy: bool = False
    draining: bool = False
    pending_until: float = 0.0  # monotonic end of the registration delay; 0: checks running
    last_failure: Health | None = None


def _failure(check_status: str, code: str) -> Health:
    if check_status == "L7STS":
        return Health("unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{code}]")
    if check_status in ("L4TOUT", "L7TOUT"):
        return Health("unhealthy", "Target.Timeout", "Request timed out")
    return Health("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


def registration_delay(config: LabConfig) -> float:
    """The lab's registration delay, or the one `<state dir>/balancer.json` sets while the lab runs."""
    try:
        runtime = json.loads((config.state_dir / RUNTIME_FILE).read_text())
        return max(0.0, float(runtime["registration_delay"]))
    except (OSError, ValueError, KeyError, TypeError):
        return config.registration_delay


class Balancer:
    def __init__(self, config: LabConfig, certificate: Path, log_target: str | None = None) -> None:
        self.config = config
        self.log_target = log_target  # HAProxy's `log` address: one line per request (metrics.py reads it)
        self.certificate = certificate  # PEM: server certificate, then its key (HAProxy's crt)
        d = config.state_dir / "haproxy"
        self.cfg, self.sock, self.pidfile = d / "haproxy.cfg", d / "admin.sock", d / "haproxy.pid"
        self.statefile, self.logfile = d / "servers.state", config.state_dir / "haproxy.log"
        self.proc: subprocess.Popen | None = None
        self.specs: dict[str, BackendSpec] = {}
        self.routes: dict[str, Route] = {}
        self.servers: dict[Key, Server] = {}
        self.maps: dict[str, list[tuple[str, str]]] = {}  # protocol -> what its weight map holds in HAProxy

    # --- process -------------------------------------------------------------------------------
    def start(self) -> None:
        self.cfg.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write_config()
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects {self.cfg}: {check.stderr.strip()[-800:]}")
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                ["haproxy", "-W", "-db", "-f", str(self.cfg), "-p", str(self.pidfile)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{self.proc.pid}\n")
        self._wait_socket(set())
        log.info("HAProxy (pid %s) listens on %s and %s", self.proc.pid, self.config.lb_http_url, self.config.lb_url)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for path in (self.sock, self.pidfile, self.statefile):
            path.unlink(missing_ok=True)

    def _wait_socket(self, backends: set[str], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited ({self.proc.returncode}); see {self.logfile}")
            try:
                out = self.cmd("show backend")
                if backends <= set(out.split()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"haproxy's admin socket {self.sock} did not answer with backends {sorted(backends)}")

    def cmd(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def _write_config(self) -> None:
        c = self.config
        lines = [
            "# Generated by the ec2-fleet lab controller: the ALB's data plane. Do not edit.",
            "global",
            f"  stats socket {self.sock} mode 600 level admin",
            f"  server-state-file {self.statefile}",
            "  maxconn 4096",
            "defaults",
            "  mode http",
            "  timeout connect 5s",
            "  timeout client 60s",
            "  timeout server 60s",
            "  timeout http-request 10s",
            "  load-server-state-from-file global",
            *self._log_lines(),
            "frontend lab-alb-http",
            f"  bind {c.lb_host}:{c.lb_port}",
            *self._route_lines("http"),
            "frontend lab-alb-https",
            f"  bind {c.lb_host}:{c.lb_https_port} ssl crt {self.certificate} alpn http/1.1",
            *self._route_lines("https"),
            f"backend {NO_TARGET}",
            f'  http-request return status 503 content-type text/plain string "{NO_TARGET}"',
        ]
        for spec in self.specs.values():
            lines += [f"backend {spec.name}", "  balance roundrobin", "  option redispatch", "  retries 1"]
            if spec.checks:
                expect = f"status {spec.matcher}"
                lines += [
                    "  option httpchk",
                    f"  http-check send meth GET uri {spec.path} ver HTTP/1.1"
                    " hdr Host lab hdr User-Agent ELB-HealthChecker/2.0",
                    f"  http-check expect {expect}",
                    f"  timeout check {spec.timeout}s",
                ]
            for srv in self.servers.values():
                if srv.backend == spec.name:
                    disabled = " disabled" if srv.pending_until else ""  # still in its registration delay
                    lines.append(f"  server {srv.name} {srv.ip}:{srv.port} {spec.server_options()}".rstrip() + disabled)
        for protocol in ("http", "https"):
            self.maps[protocol] = self._weight_entries(protocol)
            self._write_file(self.map_file(protocol), "".join(f"{k} {v}\n" for k, v in self.maps[protocol]))
        self._write_file(self.cfg, "\n".join(lines) + "\n")

    @staticmethod
    def _write_file(path: Path, text: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def map_file(self, protocol: str) -> Path:
        """The weight map of a frontend (weight_map): HAProxy reads it at start, the runtime API changes it."""
        return self.cfg.parent / f"lab-alb-{protocol}.map"

    def _weight_entries(self, protocol: str) -> list[tuple[str, str]]:
        kind, groups = self.routes.get(protocol, ("none", ()))
        return weight_map(groups, {arn: spec.name for arn, spec in self.specs.items()}) if kind == "forward" else []

    def _apply_weights(self) -> None:
        """New weights of the same listeners, without a reload: each changed map is swapped whole and at once
        (prepare map, add map @version, commit map @version), so a request sees the old weights or the new
        ones, never an empty or half-written map; connections, in-flight requests and server states are
        untouched. The file follows, for the next reload."""
        for protocol in ("http", "https"):
            entries = self._weight_entries(protocol)
            if entries == self.maps.get(protocol):
                continue
            path = self.map_file(protocol)
            prepared = self.cmd(f"prepare map {path}")
            version = re.search(r"New version created: (\d+)", prepared)
            if not version:
                raise RuntimeError(f"haproxy refused prepare map {path}: {prepared.strip()}")
            ref = f"@{version.group(1)} {path}"
            commands = [f"add map {ref} {key} {backend}" for key, backend in entries] + [f"commit map {ref}"]
            for chunk in range(0, len(commands), 20):
                out = self.cmd(";".join(commands[chunk:chunk + 20]))
                if out.strip():
                    raise RuntimeError(f"haproxy refused the weights of {path}: {out.strip()}")
            self._write_file(path, "".join(f"{k} {v}\n" for k, v in entries))
            self.maps[protocol] = entries
            log.info("Weights of the %s listener now %s", protocol, entries)

    def _log_lines(self) -> list[str]:
        """Per request, as metrics.py parses it: frontend, backend, server (<NOSRV>: none), status, Tr (ms until
        the server's response headers, -1: none), Ta (ms, whole request), termination state."""
        if not self.log_target:
            return []
        return [
            f"  log {self.log_target} len 1024 format raw local0 info",
            f'  log-format "{LOG_TAG} %f %b %s %ST %Tr %Ta %ts"',
        ]

    def _route_lines(self, protocol: str) -> list[str]:
        kind, _ = self.routes.get(protocol, ("none", ()))
        if kind == "forward":  # per request, a backend drawn by the listener's weights (weight_map)
            return [
                f"  use_backend %[rand({MAP_SLOTS}),map_int({self.map_file(protocol)},{NO_TARGET})]",
                f"  default_backend {NO_TARGET}",
            ]
        if kind == "redirect":  # as an ALB's redirect action: same host and path, the HTTPS listener's port
            return [
                "  http-request redirect location"
                f" https://%[req.hdr(host),field(1,:)]:{self.config.lb_https_port}%[capture.req.uri] code 301"
            ]
        no_listener = f'"no {protocol} listener forwards here"'
        return [f"  http-request return status 503 content-type text/plain string {no_listener}"]

    def _reload(self) -> None:
        try:
            self.statefile.write_text(self.cmd("show servers state"))
        except OSError:
            self.statefile.unlink(missing_ok=True)
        backends = {s.name for s in self.specs.values()}
        self.servers = {k: s for k, s in self.servers.items() if s.backend in backends}
        self._write_config()
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects the new {self.cfg}: {check.stderr.strip()[-800:]}")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR2)
        self._wait_socket(backends)
        # Whatever the state file restored: a target that has not passed its checks gets no traffic.
        for srv in self.servers.values():
            if srv.draining:
                self.cmd(f"set server {srv.backend}/{srv.name} state drain")
            elif srv.pending_until:
                self.cmd(f"set server {srv.backend}/{srv.name} state maint")
            elif not srv.ever_healthy:
                self.cmd(f"set server {srv.backend}/{srv.name} health down")
        log.info("HAProxy reloaded: backends %s, listeners %s", sorted(backends), self.routes)

    # --- reconcile -----------------------------------------------------------------------------
    def sync(self, instance_ips: dict[str, str]) -> None:
        """One pass: follow moto's target groups and registrations, then publish what HAProxy sees.
        instance_ips: instance id -> private IP of every running lab instance."""
        elbv2 = moto_lab.backend("elbv2", self.config.region)
        tgs = {arn: tg for arn, tg in list(elbv2.target_groups.items()) if (tg.target_type or "instance") == "instance"}
        specs = {arn: spec_of(tg) for arn, tg in tgs.items()}
        routes = listener_routes(elbv2)
        if specs != self.specs or _shape(routes) != _shape(self.routes):
            self.specs, self.routes = specs, routes
            self._reload()
        elif routes != self.routes:  # the same frontends, other target groups or weights: the runtime API
            self.routes = routes
            self._apply_weights()

        desired: dict[Key, str] = {}
        for arn, tg in tgs.items():
            for target in list(tg.targets.values()):
                ip = instance_ips.get(target["Id"])
                if ip:
                    desired[(arn, target["Id"], int(target["Port"]))] = ip

        now = time.monotonic()
        for key, ip in desired.items():
            srv = self.servers.get(key)
            if srv and srv.ip != ip:
                self._delete(key)
                srv = None
            if srv is None:
                self._add(key, ip)
            elif srv.draining:  # registered again while draining: a new registration, delay included
                self.cmd(f"set server {srv.backend}/{srv.name} state maint")
                srv.draining, srv.ever_healthy = False, False
                srv.pending_until = now + registration_delay(self.config)
                log.info("Registered %s again: no check, no traffic for %.0f s", srv.name, srv.pending_until - now)
            elif srv.pending_until and now >= srv.pending_until:
                self._activate(srv)

        for key in [k for k in self.servers if k not in desired]:
            srv = self.servers[key]
            spec = self.specs.get(key[0])
            with BOOK.lock:
                deadline = BOOK.draining.get(key)
            if deadline is None:  # deregistered another way (instance stopped or terminated, group deleted)
                BOOK.start_draining(key, spec.delay if spec else 0)
                with BOOK.lock:
                    deadline = BOOK.draining[key]
            if not srv.draining:
                self.cmd(f"set server {srv.backend}/{srv.name} state drain")
                srv.draining = True
                log.info("Draining %s/%s for %.0f s", srv.backend, srv.name, max(0.0, deadline - now))
            if now >= deadline or spec is None:
                self._delete(key)

        with BOOK.lock:
            for key in [k for k, d in BOOK.draining.items() if d <= now and k not in self.servers]:
                del BOOK.draining[key]
        self._publish_health()

    def _add(self, key: Key, ip: str) -> None:
        spec = self.specs[key[0]]
        name = f"{key[1]}-{key[2]}"
        ref = f"{spec.name}/{name}"
        # A server added at run time starts in maintenance: no check, no traffic until _activate.
        out = self.cmd(f"add server {ref} {ip}:{key[2]} {spec.server_options()}".rstrip())
        if "New server registered" not in out:
            raise RuntimeError(f"haproxy refused add server {ref}: {out.strip()}")
        now, delay = time.monotonic(), registration_delay(self.config)
        srv = Server(spec.name, name, ip, key[2], now, pending_until=now + delay)
        self.servers[key] = srv
        log.info("Registered %s at %s:%s in %s: no check, no traffic for %.0f s", key[1], ip, key[2], spec.name, delay)
        if delay <= 0:
            self._activate(srv)

    def _activate(self, srv: Server) -> None:
        """The end of the registration delay: checks start (health down until the healthy threshold)."""
        ref = f"{srv.backend}/{srv.name}"
        checks = next((s.checks for s in self.specs.values() if s.name == srv.backend), False)
        if checks:
            self.cmd(f"enable health {ref};set server {ref} state ready;set server {ref} health down")
        else:
            self.cmd(f"set server {ref} state ready")
        srv.pending_until, srv.added, srv.ever_healthy = 0.0, time.monotonic(), not checks
        log.info("Health checks of %s start", ref)

    def _delete(self, key: Key) -> None:
        srv = self.servers.pop(key)
        ref = f"{srv.backend}/{srv.name}"
        self.cmd(f"set server {ref} state maint;shutdown sessions server {ref}")
        for _ in range(50):
            if "deleted" in self.cmd(f"del server {ref}"):
                break
            time.sleep(0.1)
        BOOK.cancel_draining(key)
        log.info("Removed %s from %s", srv.name, srv.backend)

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        rows = csv.DictReader(io.StringIO(self.cmd("show stat").lstrip("# ")))
        return {(r["pxname"], r["svname"]): r for r in rows}

    def _publish_health(self) -> None:
        stats = self.stats()
        now = time.monotonic()
        book: dict[Key, Health] = {}
        for key, srv in self.servers.items():
            if srv.draining:
                continue
            if srv.pending_until:
                book[key] = moto_lab.INITIAL
                continue
            row = stats.get((srv.backend, srv.name))
            spec = self.specs[key[0]]
            book[key] = self._judge(srv, spec, row, now) if row else moto_lab.INITIAL
        with BOOK.lock:
            BOOK.health = book

    @staticmethod
    def _judge(srv: Server, spec: BackendSpec, row: dict[str, str], now: float) -> Health:
        status, check, code = row.get("status", ""), row.get("check_status", ""), row.get("check_code", "")
        failing = check not in ("", "INI", "L7OK", "L4OK", "L6OK")
        if failing:
            srv.last_failure = _failure(check, code)
        if status.startswith("UP") or status == "no check":
            srv.ever_healthy = True
            return HEALTHY
        if not srv.ever_healthy:
            # As on an ALB: 'initial' until the healthy threshold passes or the unhealthy threshold fails.
            if failing and now - srv.added >= spec.interval * spec.fall + spec.timeout:
                return srv.last_failure or _failure(check, code)
            return moto_lab.INITIAL
        return srv.last_failure or _failure(check, code)
