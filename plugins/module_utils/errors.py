# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exceptions of the collection. Each becomes ``fail_json(msg=..., **details)`` in one place
(the module base class, the action plugin base class)."""

from __future__ import annotations

from typing import Any


class DifyError(Exception):
    """Something failed; ``details`` goes into the task result next to ``msg``."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.details = details


class InputError(DifyError):
    """An input is wrong; the message names the variable. Raised before any change."""


class ApiError(DifyError):
    """The Kubernetes API refused or failed a request; the message is the apiserver's."""

    def __init__(self, msg: str, status: int | None = None, **details: Any) -> None:
        super().__init__(msg, **details)
        self.status = status


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: already exists, or a precondition (uid, resourceVersion) failed."""


class Expired(ApiError):
    """410: the resource version of a watch is too old; list again."""


class JobFailed(DifyError):
    """A Job (a migration, a backup, a probe) did not succeed."""


class ApplyFailed(DifyError):
    """Applying objects or waiting for their rollout failed."""
