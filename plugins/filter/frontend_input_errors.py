# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the frontend role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    has_project_tags,
    int_between,
    matches,
    to_json,
)

REGION_RE = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
DOMAIN_RE = r"^(([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})?$"
RELEASE_RE = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$"


def bucket_name_problem(name: Any) -> str:
    """Why name is not a valid S3 general purpose bucket name (AWS's rules), or ''."""
    name = str(name)
    if not 3 <= len(name) <= 63:
        return "it must be 3-63 characters long"
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name):
        return "it may hold only lower-case letters, digits, '.' and '-', and must start and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "it must not hold '..', '.-' or '-.'"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "it must not look like an IP address"
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        return "it must not start with xn--, sthree- or amzn-s3-demo- nor end with -s3alias, --ol-s3 or --x-s3"
    if "." in name:
        # A dotted name breaks the bucket's TLS certificate on virtual-hosted requests, CloudFront's origin among them.
        return "it must not hold '.' (the origin's TLS name *.s3.REGION.amazonaws.com would not match)"
    return ""


def frontend_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the frontend_* inputs (a map of each variable's name to its value)."""
    v = inputs
    e = []
    problem = bucket_name_problem(v["frontend_bucket_name"])
    if problem:
        e.append(f"frontend_bucket_name is not a valid S3 bucket name (got '{v['frontend_bucket_name']}'): {problem}")
    if not matches(REGION_RE, v["frontend_region"]):
        e.append(f"frontend_region must be a region like eu-west-1 (got '{v['frontend_region']}')")
    if not has_project_tags(v["frontend_tags"]):
        e.append(f"frontend_tags must contain Project and Environment (got {to_json(v['frontend_tags'])})")
    if not matches(DOMAIN_RE, v["frontend_domain"]):
        e.append(f"frontend_domain must be empty or a lower-case domain name (got '{v['frontend_domain']}')")
    if not int_between(v["frontend_keep_releases"], 1, 50):
        e.append(f"frontend_keep_releases must be 1-50 (got {v['frontend_keep_releases']})")
    if not matches(RELEASE_RE, v["frontend_release"]):
        e.append(
            f"frontend_release must be empty or 1-64 letters, digits, '.', '_' or '-' (got '{v['frontend_release']}')"
        )
    ttls = [v["frontend_min_ttl"], v["frontend_default_ttl"], v["frontend_max_ttl"]]
    if not (all(int_between(t, 0, 31536000) for t in ttls) and int(ttls[0]) <= int(ttls[1]) <= int(ttls[2])):
        e.append(
            "frontend_min_ttl <= frontend_default_ttl <= frontend_max_ttl must hold, each 0-31536000 s "
            f"(got {ttls[0]}, {ttls[1]}, {ttls[2]})"
        )
    publishing = v["frontend_state"] == "present" and (bool(v["frontend_src"]) or as_bool(v["frontend_rollback"]))
    # A rollback republishes a release already in the bucket: frontend_src is not read then.
    deploying = v["frontend_state"] == "present" and v["frontend_src"] and not as_bool(v["frontend_rollback"])
    if deploying and not os.path.isfile(os.path.join(str(v["frontend_src"]), "index.html")):
        e.append(
            f"frontend_src must be a build directory with index.html at its top (got '{v['frontend_src']}'): "
            "build it first (tools/build-frontend.sh API_URL OUT_DIR)"
        )
    if publishing and not v["frontend_audit_dir"]:
        e.append("frontend_audit_dir must name a directory for the deploy's audit record")
    return e


class FilterModule:
    """Filters: frontend_input_errors."""

    def filters(self) -> dict:
        return {"frontend_input_errors": frontend_input_errors}
