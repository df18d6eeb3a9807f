"""The lab as closed as a VPC: the control node cannot open SSH to a private instance directly.

One nftables table per lab (`inet <lab name with '-' as '_'>_ssh`, so two labs run side by side)
with one rule in the host's output hook: a NEW TCP connection to port 22 of an address in one of
the lab's VPC networks is dropped, unless the address is a bastion's (an instance tagged
Role=bastion). Only the host's own connections pass the output hook: the bastion's connections to
the instances are bridged between containers and never see it, and the load balancer's (HAProxy
on the host) connections to the app port, the IMDS emulator and DNS are other ports.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable

log = logging.getLogger(__name__)

SSH_PORT = 22


class FirewallError(RuntimeError):
    pass


def table_name(lab: str) -> str:
    return lab.replace("-", "_") + "_ssh"


def ruleset(lab: str, networks: Iterable[str], bastions: Iterable[str]) -> str:
    """The nft script that replaces the lab's table in one transaction."""
    table = table_name(lab)
    nets = ", ".join(sorted(set(networks)))
    hops = ", ".join(sorted(set(bastions)))
    return "\n".join(
        [
            f"table inet {table} {{}}",  # so that the delete below never fails
            f"delete table inet {table}",
            f"table inet {table} {{",
            "  set private { type ipv4_addr; flags interval; " + (f"elements = {{ {nets} }}; " if nets else "") + "}",
            "  set bastions { type ipv4_addr; " + (f"elements = {{ {hops} }}; " if hops else "") + "}",
            "  chain output {",
            "    type filter hook output priority 0; policy accept;",
            f"    ip daddr @private ip daddr != @bastions tcp dport {SSH_PORT} ct state new drop",
            "  }",
            "}",
            "",
        ]
    )


def _nft(script: str) -> None:
    if shutil.which("nft") is None:
        raise FirewallError("nft not found: install nftables (make host-deps)")
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise FirewallError(f"nft failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")


class Firewall:
    """Keeps the lab's table in step with its networks and bastions (applied only when they change)."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self._applied: tuple[frozenset[str], frozenset[str]] | None = None

    def apply(self, networks: Iterable[str], bastions: Iterable[str]) -> None:
        wanted = (frozenset(networks), frozenset(bastions))
        if wanted == self._applied:
            return
        _nft(ruleset(self.lab, *wanted))
        self._applied = wanted
        log.info(
            "Firewall %s: no SSH from this host to %s except the bastions %s",
            table_name(self.lab), ", ".join(sorted(wanted[0])) or "-", ", ".join(sorted(wanted[1])) or "-",
        )

    def remove(self) -> None:
        remove(self.lab)
        self._applied = None


def remove(lab: str) -> bool:
    """Delete the lab's table if it exists; True when there was one."""
    if shutil.which("nft") is None:
        return False
    table = table_name(lab)
    listed = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True, timeout=30,
                            check=False)
    if listed.returncode != 0:
        return False
    _nft(f"delete table inet {table}\n")
    return True
