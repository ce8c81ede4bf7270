# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dify's deployment contract as data (roles/dify/files/contract/): what Dify's own docker compose
files give each service of a release line, and how this collection maps it onto Kubernetes
(collection.yml: workloads, Service names, deliberate deviations). The files are parsed YAML here;
the conformance test (tests/unit/plugins/module_utils/model/test_contract.py) compares them with
the model. See the folder's README.md for the schema."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

# A short reference in a line file: "<source>#L<n>" or "<source>#L<n>-L<m>", <source> a key of
# the file's `sources`. Anything else (a pull request, a third-party note) is kept as written.
_SHORT = re.compile(r"^([a-z_]+)#(L\d+(?:-L\d+)?)$")
# Where a compose host name stands in a value: a URL's host or a "host:port".
_HOST = r"(^|//|@)({names})(?=:\d+|/)"


def cite(ref: str, sources: dict[str, str]) -> str:
    """The full citation of a value: dify:docker/<path>@<commit>#L<n>."""
    parts = []
    for one in str(ref).split(", "):
        match = _SHORT.match(one.strip())
        if match and match.group(1) in sources:
            base = sources[match.group(1)]
            note = ""
            if " (" in base:  # e.g. "(main 2026-07-27, not a 1.17 file)"
                base, note = base.split(" (", 1)
                note = " (" + note
            parts.append(f"{base}#{match.group(2)}{note}")
        else:
            parts.append(one)
    return ", ".join(parts)


def shared_names(contract: dict[str, Any], service: str) -> list[str]:
    """The keys of the shared environment that concern a service (all of them, a list, or all but
    an ``except`` list), in the order of .env.example."""
    svc = contract["services"][service]
    shared = svc.get("shared")
    every = list((contract.get("shared_env") or {}).get("env") or {})
    if not shared:
        return []
    if shared == "all":
        return every
    if isinstance(shared, dict):
        excluded = set(shared.get("except") or [])
        return [k for k in every if k not in excluded]
    return [k for k in every if k in set(shared)]


def service_env(contract: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    """What compose sets on a service and the service reads: the shared keys that concern it, then
    its own ``environment`` (which wins, as in compose). Each entry: value, source (a full
    citation), secret, via (the .env key compose interpolated), shared (from the shared env)."""
    sources = contract["sources"]
    shared_env = (contract.get("shared_env") or {}).get("env") or {}
    out: dict[str, dict[str, Any]] = {}
    for name in shared_names(contract, service):
        entry = shared_env[name]
        out[name] = {
            "value": str(entry.get("value", "")),
            "source": cite(entry["from"], sources),
            "secret": bool(entry.get("secret")),
            "via": name,
            "shared": True,
        }
    own = contract["services"][service].get("env") or {}
    # A shared key that the service's own environment passes on under another name (compose:
    # API_KEY: ${SANDBOX_API_KEY}) is read under that name; the key itself is not the service's.
    for entry in own.values():
        if entry.get("via") and entry["via"] not in own:
            out.pop(entry["via"], None)
    for name, entry in own.items():
        out[name] = {
            "value": str(entry.get("value", "")),
            "source": cite(entry["from"], sources),
            "secret": bool(entry.get("secret")),
            "via": entry.get("via", name),
            "shared": False,
        }
    return out


def compose_names(contract: dict[str, Any], service: str) -> set[str]:
    """Every variable compose sets on a service, whether the service reads it or not."""
    names = set(contract["services"][service].get("env") or {})
    shared = contract.get("shared_env") or {}
    if service in (shared.get("services") or []):
        names |= set(shared.get("env") or {})
    return names


def _any(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def applies(rule: dict[str, Any], line: str, service: str = "", name: str = "", shared: bool = False) -> bool:
    """Whether a deviation (or an extra) of collection.yml covers a line, a service and a variable
    (shell patterns; ``except`` patterns excluded; ``shared_only``: only a key of the shared
    environment, not one of the service's own environment)."""
    if rule.get("lines") and line not in rule["lines"]:
        return False
    if service and rule.get("services") and not _any(service, rule["services"]):
        return False
    if rule.get("shared_only") and not shared:
        return False
    if name and rule.get("except") and _any(name, rule["except"]):
        return False
    return not (name and rule.get("vars") and not _any(name, rule["vars"]))


def deviation(
    rules: list[dict[str, Any]], line: str, service: str, name: str, shared: bool = False
) -> dict[str, Any] | None:
    """The first deviation that covers this variable of this service on this line."""
    for rule in rules:
        if applies(rule, line, service, name, shared):
            return rule
    return None


def map_hosts(value: str, hosts: dict[str, str], name: str = "") -> str:
    """A compose value with the compose service names replaced by the Kubernetes Service names:
    http://api:5001 -> http://dify-api:5001, redis:6379 -> dify-redis:6379, and for a variable
    named *_HOST the whole value (DB_HOST db_postgres -> dify-postgres)."""
    if not value or not hosts:
        return value
    if name.endswith("_HOST") and value in hosts:
        return hosts[value]
    names = "|".join(re.escape(h) for h in sorted(hosts, key=len, reverse=True))
    return re.sub(_HOST.format(names=names), lambda m: m.group(1) + hosts[m.group(2)], value)
