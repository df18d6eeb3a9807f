"""Teardown helper of the aws_network role: which failed deletions are worth retrying."""

from __future__ import annotations


def aws_network_dependency_violation(result: object) -> bool:
    """True when a failed amazon.aws task result is AWS's DependencyViolation (and nothing else).

    amazon.aws modules put the botocore error under `error.code` and repeat it in `msg`.
    """
    if not isinstance(result, dict) or not result.get("failed"):
        return False
    error = result.get("error")
    if isinstance(error, dict) and error.get("code") == "DependencyViolation":
        return True
    return "DependencyViolation" in str(result.get("msg", ""))


class FilterModule:
    def filters(self):
        return {"aws_network_dependency_violation": aws_network_dependency_violation}
