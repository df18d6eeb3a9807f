"""HTTP(S) through a lab's load balancer (verified against the lab CA) and the lab's instance list."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request

# The CA of the load balancer's HTTPS listener (the lab CA), set once the lab is up.
_TLS: dict[str, ssl.SSLContext] = {}


def trust(ca_file: str) -> None:
    """Verify https:// answers against ca_file (and nothing else)."""
    _TLS["lb"] = ssl.create_default_context(cafile=ca_file)


def http(url: str, data: dict | None = None, timeout: float = 10,
         headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    context = _TLS.get("lb") if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def served_instances(lb_url: str, requests: int = 60) -> set[str]:
    """Instance ids that answered /version through the load balancer (a bounded loop)."""
    seen = set()
    for _ in range(requests):
        status, _, body = http(f"{lb_url}/version")
        if status == 200:
            seen.add(body["instance_id"])
    return seen


def lab_instance_ids(fleet) -> set[str]:
    table = fleet.labctl("status").stdout
    return set(re.findall(r"^(i-[0-9a-f]+)\s", table, flags=re.M))
