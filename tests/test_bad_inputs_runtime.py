"""Bad inputs to the runtime role are refused before anything changes, naming the variable."""

from __future__ import annotations

import re

import pytest

from ec2_fleet_dev.plays import assert_rejected, failure_messages

PY = {"runtime_kind": "python"}
NODE = {"runtime_kind": "node"}

# (variable named in the refusal, role vars, fragment proving which check refused it)
CASES = [
    ("runtime_kind", {}, r"missing required arguments: runtime_kind"),
    ("runtime_kind", {"runtime_kind": "ruby"}, r"runtime_kind must be one of: python, node"),
    ("runtime_kind", {"runtime_kind": ["python"]}, r"runtime_kind"),
    ("runtime_python_min_version", {**PY, "runtime_python_min_version": "3.x"}, r"must be MAJOR\.MINOR"),
    ("runtime_python_min_version", {**PY, "runtime_python_min_version": 3}, r"must be MAJOR\.MINOR"),
    # a well-formed minimum the host cannot meet: refused before python3-venv is installed
    ("runtime_python_min_version", {**PY, "runtime_python_min_version": "3.99"}, r"older than"),
    ("runtime_node_min_version", {**NODE, "runtime_node_min_version": "v18"}, r"runtime_node_min_version MAJOR"),
    ("runtime_node_source", {**NODE, "runtime_node_source": "snap"}, r"must be one of: auto, distro, nodesource"),
    ("runtime_node_major", {**NODE, "runtime_node_major": -20}, r"even \(LTS\) Node\.js major release >= 18"),
    ("runtime_node_major", {**NODE, "runtime_node_major": 21}, r"even \(LTS\) Node\.js major release >= 18"),
    ("runtime_node_major", {**NODE, "runtime_node_major": "twenty"}, r"runtime_node_major.*int"),
    ("runtime_nodesource_url", {**NODE, "runtime_nodesource_url": "ftp://mirror.example"}, r"an http\(s\) URL"),
    (
        "runtime_node_min_version",
        {**NODE, "runtime_node_source": "nodesource", "runtime_node_major": 20, "runtime_node_min_version": "22.1"},
        r"can never be met by NodeSource's runtime_node_major 20",
    ),
]


@pytest.mark.parametrize(
    ("variable", "role_vars", "message"), CASES, ids=[f"{c[0]}:{c[1]!r}"[:70] for c in CASES]
)
def test_runtime_refuses_bad_input(apply_role, variable, role_vars, message):
    result = apply_role("runtime", role_vars)
    assert_rejected(result, variable)
    refusal = re.sub(r"\s+", " ", " ".join(failure_messages(result.output)))
    assert re.search(message, refusal), f"refusal does not say /{message}/: {refusal}"


# Facts of hosts the role was never written for, handed in as extra vars (they win over
# the gathered ones): refused before anything is installed, naming what is supported.
UNSUPPORTED = [
    {"distribution": "Ubuntu", "distribution_major_version": "20", "distribution_version": "20.04"},
    {"distribution": "Ubuntu", "distribution_major_version": "26", "distribution_version": "26.04"},
]


@pytest.mark.parametrize("facts", UNSUPPORTED, ids=[f["distribution_version"] for f in UNSUPPORTED])
def test_runtime_refuses_an_unsupported_platform(apply_role, facts):
    result = apply_role("runtime", {**NODE, "ansible_facts": {**facts, "os_family": "Debian"}})
    assert_rejected(result, f"Ubuntu {facts['distribution_version']}")
    refusal = re.sub(r"\s+", " ", " ".join(failure_messages(result.output)))
    assert "supported: Ubuntu 22.04, Ubuntu 24.04, Debian 12" in refusal, refusal
