"""Poll beside the load what AWS published: a target group's health (elbv2 describe_target_health) and
CloudWatch alarm states (cloudwatch describe_alarms)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

MAX_POLL_ERRORS = 50


MAX_REASON_CHARS = 300


class _Poller:
    """A thread calling `_sample` every interval seconds until `stop` is set; the samples it returns are kept.

    Samples carry t in seconds since t0 (a time.monotonic() value: the load's start). Polling errors are
    recorded (the first MAX_POLL_ERRORS, all counted), never raised.
    """

    service = ""
    thread_name = "loadgen-poll"

    def __init__(self, aws_url: str | None, region: str, interval: float, t0: float, stop: threading.Event) -> None:
        self.aws_url = aws_url
        self.region = region
        self.interval = interval
        self._t0 = t0
        self._stop = stop
        self._lock = threading.Lock()
        self._samples: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self.error_count = 0
        self._thread = threading.Thread(target=self._poll, name=self.thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def samples(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._samples]

    def errors(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._errors)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.aws_url,
            "config": Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        }
        if self.aws_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            # A local endpoint (moto, the lab) accepts any key. Asking botocore's credential chain
            # instead would end at the instance metadata service: seconds of waiting, off loopback.
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
        return boto3.Session(region_name=self.region).client(self.service, **kwargs)

    def _error(self, exc: BaseException) -> None:
        with self._lock:
            self.error_count += 1
            if len(self._errors) < MAX_POLL_ERRORS:
                self._errors.append({"t": round(self._now(), 3), "detail": f"{type(exc).__name__}: {exc}"[:300]})

    def _sample(self, client: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _poll(self) -> None:
        try:
            client = self._client()
        except Exception as exc:
            self._error(exc)
            return
        polls = 0
        while not self._stop.is_set():
            try:
                sample = self._sample(client)
                with self._lock:
                    self._samples.append(sample)
            except Exception as exc:
                self._error(exc)
            polls += 1
            next_poll = self._t0 + polls * self.interval
            self._stop.wait(max(0.0, next_poll - time.monotonic()))


class TargetPoller(_Poller):
    """A thread sampling one target group's health every interval seconds until `stop` is set.

    Samples are {t, states {target: state}, reasons {target: reason}} with t in seconds since t0
    (a time.monotonic() value: the load's start). Polling errors are recorded, never raised.
    """

    service = "elbv2"
    thread_name = "loadgen-poll"

    def __init__(self, target_group_arn: str, aws_url: str | None, region: str, interval: float,
                 t0: float, stop: threading.Event) -> None:
        self.target_group_arn = target_group_arn
        super().__init__(aws_url, region, interval, t0, stop)

    def _sample(self, client: Any) -> dict[str, Any]:
        answer = client.describe_target_health(TargetGroupArn=self.target_group_arn)
        descriptions = answer.get("TargetHealthDescriptions", [])
        ids = Counter(d["Target"]["Id"] for d in descriptions)
        states: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for item in descriptions:
            target = item["Target"]
            key = target["Id"] if ids[target["Id"]] == 1 else f"{target['Id']}:{target.get('Port')}"
            health = item.get("TargetHealth", {})
            states[key] = health.get("State", "unknown")
            if health.get("Reason"):
                reasons[key] = health["Reason"]
        sample: dict[str, Any] = {"t": round(self._now(), 3), "states": states}
        if reasons:
            sample["reasons"] = reasons
        return sample


class AlarmPoller(_Poller):
    """A thread reading CloudWatch alarms' states every interval seconds until `stop` is set.

    Samples are {t, states {alarm: StateValue}, reasons {alarm: StateReason}}; an alarm that does not
    exist (or no longer does) is absent from `states`. Polling errors are recorded, never raised.
    """

    service = "cloudwatch"
    thread_name = "loadgen-alarms"

    def __init__(self, alarm_names: list[str], aws_url: str | None, region: str, interval: float,
                 t0: float, stop: threading.Event) -> None:
        self.alarm_names = list(alarm_names)
        super().__init__(aws_url, region, interval, t0, stop)

    def _sample(self, client: Any) -> dict[str, Any]:
        states: dict[str, str] = {}
        reasons: dict[str, str] = {}
        # describe_alarms takes at most 100 names a call; the pages are bounded by the names asked.
        for start in range(0, len(self.alarm_names), 100):
            answer = client.describe_alarms(AlarmNames=self.alarm_names[start:start + 100])
            for alarm in answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", []):
                name = alarm["AlarmName"]
                states[name] = alarm.get("StateValue", "unknown")
                reasons[name] = str(alarm.get("StateReason", ""))[:MAX_REASON_CHARS]
        return {"t": round(self._now(), 3), "states": states, "reasons": reasons}


def health_report(samples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The samples with out_of_service (targets not healthy, or gone since an earlier sample), and the worst."""
    seen: set[str] = set()
    worst = 0
    for sample in samples:
        states = sample["states"]
        out = sum(1 for state in states.values() if state != "healthy") + len(seen - states.keys())
        seen |= states.keys()
        sample["out_of_service"] = out
        worst = max(worst, out)
    return samples, worst


def alarm_report(samples: list[dict[str, Any]], alarm_names: list[str]) -> tuple[list[dict[str, Any]],
                                                                                 dict[str, list[dict[str, Any]]]]:
    """The samples as {t, states} and, per alarm asked, its transitions [{t, from, to, reason}].

    A transition is recorded at the first sample showing a state other than the alarm's previous sample's
    (an alarm's first state is in the first sample, not a transition). The reason is the StateReason of
    that sample (at most MAX_REASON_CHARS characters)."""
    transitions: dict[str, list[dict[str, Any]]] = {name: [] for name in alarm_names}
    last: dict[str, str] = {}
    for sample in samples:
        for name, state in sample["states"].items():
            if name in last and last[name] != state:
                transitions.setdefault(name, []).append({
                    "t": sample["t"], "from": last[name], "to": state,
                    "reason": sample.get("reasons", {}).get(name, "")[:MAX_REASON_CHARS],
                })
            last[name] = state
    return [{"t": s["t"], "states": dict(s["states"])} for s in samples], transitions
