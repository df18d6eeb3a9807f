# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the app's database URL for where the hosts run (what a type cannot say).

Supabase's direct host, db.PROJECT_REF.supabase.co, answers on IPv6 only. The VPC this project
creates (roles/aws_network) is IPv4-only and has no IPv6 setting, so that host is unreachable from
the app hosts: refused, before any change, naming where the URL came from and saying what to use
instead (the pooler). The URL is a secret: a message shows its host at most, never the URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

SUPABASE_DIRECT_HOST_RE = r"^db\.[a-z0-9]+\.supabase\.co\.?$"


def _hosts(url: str) -> list[str]:
    """The hosts a libpq URL names: postgresql://user:pw@h1:5432,h2/db?host=h3 (lower case, no port)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    netloc = parts.netloc.rsplit("@", 1)[-1]
    hosts = []
    for item in netloc.split(","):
        host = item[1:].split("]", 1)[0] if item.startswith("[") else item.split(":", 1)[0]
        if host:
            hosts.append(unquote(host))
    for value in parse_qs(parts.query).get("host", []):
        hosts += [h for h in value.split(",") if h]
    return [h.lower() for h in hosts]


def fleet_database_url_errors(url: str, source: str = "vault_fleet_database_url") -> list[str]:
    """Every problem with the database URL `url`, read from `source` (the variable or SSM parameter)."""
    errors = []
    for host in _hosts(str(url or "")):
        if re.match(SUPABASE_DIRECT_HOST_RE, host):
            ref = host.split(".")[1]
            errors.append(
                f"{source} points at Supabase's direct host {host}, which has an IPv6 address only; the VPC "
                "of this project is IPv4-only (roles/aws_network has no IPv6), so the hosts cannot reach it. "
                f"Use Supabase's pooler instead: host aws-0-REGION.pooler.supabase.com (the project's region), "
                f"port 6543 (transaction mode), user postgres.{ref}, sslmode=verify-full with Supabase's CA "
                "(docs/database.md, \"Supabase\"). Nothing was changed."
            )
    return errors


class FilterModule:
    """Filters: fleet_database_url_errors."""

    def filters(self) -> dict:
        return {"fleet_database_url_errors": fleet_database_url_errors}
