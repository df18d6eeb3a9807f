# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every AWS module of the collection shares: the botocore errors it catches and the way it warns."""

from __future__ import annotations

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore itself
    import botocore


# The statuses of an instance refresh that is still going on (DescribeInstanceRefreshes).
REFRESH_ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")


def aws_errors() -> tuple[type[Exception], ...]:
    """The exceptions a boto3 call raises for an AWS answer or a transport failure."""
    return (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def warn(module: Any, message: str) -> None:
    """Warn through ansible-core directly: amazon.aws 10's AnsibleAWSModule.warn also copies the warning into
    the result, which ansible-core 2.19 answers with a deprecation notice on every run."""
    module._module.warn(message)
