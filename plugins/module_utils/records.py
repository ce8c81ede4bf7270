# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records: what the collection knows of the data it looks after, kept in ConfigMaps.

The migration (image, Job, revisions), the backups (name -> from, to, time, ...), the provider
setup (a fingerprint), the adoption (source, what was copied and how far) and the operation under
way (restore: what ran before it stopped the writers). Every record is written here, one way:
typed, with optimistic concurrency (the resourceVersion read), and with the label RECORD_LABEL,
which no prune selects: neither a configuration phase nor a plain uninstall removes a record (only
dify_purge_data does).

Values are strings (ConfigMap data); structured values are JSON, encoded and decoded here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict, DifyError, NotFound

# The records and the component label each carries (older versions selected records by it).
KINDS: dict[str, tuple[str, str]] = {
    # kind: (ConfigMap name, app.kubernetes.io/component)
    "migration": (names.MIGRATION_RECORD, names.MIGRATION),
    "backups": (names.BACKUP_RECORD, "backups"),
    "provider-setup": (names.PROVIDER_SETUP_RECORD, names.PROVIDER_SETUP),
    "adoption": (names.ADOPTION_RECORD, "adoption"),
    "operation": (names.OPERATION_RECORD, "operation"),
    "upgrade-steps": (names.UPGRADE_STEPS_RECORD, "upgrade-steps"),
}
# What every prune of ConfigMaps must leave alone: records by their label, and records written by
# versions before the label (by their component).
NOT_A_RECORD = (
    f"!{names.RECORD_LABEL},{names.LABEL_COMPONENT} notin ({','.join(sorted(c for _n, c in KINDS.values()))})"
)


class RecordApi(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, **options: Any) -> Any: ...


def labels(kind: str) -> dict[str, str]:
    return dict(names.labels(KINDS[kind][1]), **{names.RECORD_LABEL: kind})


def encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def decode_json(text: str | None, default: Any = None) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


@dataclass
class Records:
    """Reads and writes the records of one namespace."""

    api: RecordApi
    namespace: str
    attempts: int = 5

    def read(self, kind: str) -> dict[str, str] | None:
        cm = self.api.get("v1", "ConfigMap", KINDS[kind][0], self.namespace)
        return None if cm is None else dict(cm.get("data") or {})

    def write(self, kind: str, changes: dict[str, Any], replace: bool = False, name: str = "") -> dict[str, str]:
        """Merge ``changes`` into the record (a None value removes that key; ``replace`` drops the
        keys not given), creating it if needed, and set its labels. Retries when another writer
        got in between (optimistic concurrency); returns the data written. ``name``: a record of
        that kind under another name (dify_migrate's record is named like its Job)."""
        name = name or KINDS[kind][0]
        for _attempt in range(self.attempts):
            current = self.api.get("v1", "ConfigMap", name, self.namespace)
            data = {} if replace or current is None else dict(current.get("data") or {})
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = encode(value)
            meta: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": labels(kind)}
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
            try:
                if current is None:
                    self.api.create(body)
                else:
                    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
                    self.api.replace(body)
                return data
            except (Conflict, NotFound):
                continue  # someone wrote (or deleted) in between: read again
        raise DifyError(f"could not write the record ConfigMap {self.namespace}/{name}: it kept changing")

    def delete(self, kind: str) -> None:
        try:
            self.api.delete("v1", "ConfigMap", KINDS[kind][0], self.namespace)
        except NotFound:
            pass


def backup_entries(data: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    """The backup record as name -> entry (entries that are not JSON objects are skipped)."""
    out = {}
    for name, text in (data or {}).items():
        entry = decode_json(text)
        if isinstance(entry, dict):
            out[name] = entry
    return out


# -- reports: what a Job says it did, one marker line of JSON -------------------------------------

REPORT_MARKER = "DIFY_REPORT "


def parse_report(log_text: str) -> dict[str, Any] | None:
    """The last report line a Job printed (``DIFY_REPORT {json}``), decoded; None without one."""
    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line.startswith(REPORT_MARKER):
            report = decode_json(line[len(REPORT_MARKER) :])
            return report if isinstance(report, dict) else None
    return None
