# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks the argument spec cannot express. Each message names the variable; all of them run
before the first request to the cluster."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import observability
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL = re.compile(r"^https?://[^/\s]+(/.*)?$")
STRONG_PASSWORD = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9]).{8,}$")
# Variables that have their own variables (kept in a Secret) or must stay as they are.
RESERVED_ENV = ("SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD", "MIGRATION_ENABLED")


def is_network(value: object) -> bool:
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def is_ipv4_mapped(value: str) -> bool:
    """An IPv6 range within ::ffff:0:0/96 (IPv4 addresses as IPv6 writes them)."""
    net = ipaddress.ip_network(value, strict=False)
    return net.version == 6 and net.subnet_of(ipaddress.ip_network("::ffff:0:0/96"))


def is_address(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def is_port_or_range(value: object) -> bool:
    """A TCP port (1-65535) or a range of them ("1025-65535"), as squid's port ACL takes them."""
    parts = str(value).split("-")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        return False
    numbers = [int(p) for p in parts]
    return all(1 <= n <= 65535 for n in numbers) and numbers == sorted(numbers)


def replicas(s: Settings) -> dict[str, int]:
    """Replicas per Deployment that may run several (its dify_<component>_replicas): with dify_ha
    at least two (where the component scales: the plugin daemon only on shared storage)."""

    def floor(component: str) -> int:
        scales = components.named(component).scales
        return 2 if s.ha and (scales is None or scales(s)) else 0

    return {component: max(s.get(var), floor(component)) for component, var in components.replica_variables().items()}


def problems(s: Settings) -> list[str]:
    """Everything wrong with the inputs (the argument spec checked types and choices)."""
    found: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    check(
        bool(DNS_LABEL.match(s.namespace)),
        f"dify_namespace '{s.namespace}' is not a valid namespace name (lowercase DNS label).",
    )
    check(
        bool(IMAGE_TAG.match(s.image_tag)) and s.image_tag != "latest",
        f"dify_image_tag '{s.image_tag}' is not a pinned image tag (like 1.11.4): the migration record and "
        "upgrades need a fixed version, and 'latest' is none.",
    )
    counts = {name: s.get(name) for name in components.replica_variables().values()}
    check(
        all(value >= 0 for value in counts.values()),
        "Replica counts must not be negative: " + ", ".join(f"dify_{k}={v}" for k, v in counts.items()) + ".",
    )
    wanted = replicas(s)
    check(
        s.files_storage != "pvc"
        or s.files_access_mode == "ReadWriteMany"
        or (wanted["api"] <= 1 and wanted["worker"] <= 1 and not s.autoscaling),
        f"dify_files_access_mode is ReadWriteOnce but dify_api_replicas={wanted['api']} and "
        f"dify_worker_replicas={wanted['worker']} ({'dify_ha' if s.ha else 'as given'}, autoscaling "
        f"{'on' if s.autoscaling else 'off'}): pods on other nodes could not mount the files volume. Use a "
        "ReadWriteMany class (dify_files_storage_class, e.g. Nutanix Files), object storage (dify_files_storage: "
        "s3, e.g. Nutanix Objects), or one api and one worker replica.",
    )
    check(
        s.files_storage != "s3"
        or (bool(s.s3_bucket) and (s.s3_use_aws_managed_iam or (bool(s.s3_access_key) and bool(s.s3_secret_key)))),
        "dify_files_storage is s3, so dify_s3_bucket and dify_s3_access_key/dify_s3_secret_key (or "
        "dify_s3_use_aws_managed_iam) are required.",
    )
    # What each component checks of its own variables (an external data service's address).
    for component in components.ALL:
        found += component.checks(s) if component.checks else []
    found += observability.checks(s)
    check(
        not s.public_url or bool(URL.match(s.public_url)),
        f"dify_public_url '{s.public_url}' must be empty or an http(s):// URL.",
    )
    check(s.expose != "ingress" or bool(s.ingress_host), "dify_expose is ingress, so dify_ingress_host is required.")
    check(
        not s.loadbalancer_ip or is_address(s.loadbalancer_ip),
        f"dify_loadbalancer_ip '{s.loadbalancer_ip}' is not an IP address.",
    )
    bad = [c for c in s.private_cidrs if not is_network(c)]
    check(not bad, f"dify_private_cidrs must be networks in CIDR notation (like 10.0.0.0/8), not {bad}.")
    extra = s.network_policy_extra_egress
    check(
        all(isinstance(e, dict) and is_network(e.get("cidr")) for e in extra),
        "dify_network_policy_extra_egress entries need a cidr (like {cidr: 10.20.0.5/32, ports: [5432]}), "
        f"got {extra}.",
    )
    capable = components.internet_capable()  # never the sandbox
    bad = [c for c in s.network_policy_internet_egress if c not in capable]
    check(
        not bad,
        f"dify_network_policy_internet_egress may name {', '.join(capable)} (the sandbox never gets "
        f"direct internet access), not {bad}.",
    )
    for var in ("network_policy_ingress_cidrs", "network_policy_dns_cidrs"):
        bad = [c for c in s.get(var) if not is_network(c)]
        check(not bad, f"dify_{var} must be networks in CIDR notation, not {bad}.")
    bad = [c for c in s.ssrf_proxy_denied_cidrs if not is_network(c)]
    check(
        not bad,
        f"dify_ssrf_proxy_denied_cidrs must be networks in CIDR notation (like 169.254.0.0/16), not {bad}.",
    )
    mapped = [c for c in s.ssrf_proxy_denied_cidrs if is_network(c) and is_ipv4_mapped(c)]
    check(
        not mapped,
        f"dify_ssrf_proxy_denied_cidrs must not list IPv4-mapped ranges {mapped}: squid reads ::ffff:0:0/96 as "
        "0.0.0.0/0 and would refuse every IPv4 destination; list the IPv4 range instead (10.0.0.0/8 covers "
        "::ffff:10.0.0.0/104).",
    )
    bad = [p for p in s.ssrf_proxy_allowed_ports if not is_port_or_range(p)]
    check(
        bool(s.ssrf_proxy_allowed_ports) and not bad,
        "dify_ssrf_proxy_allowed_ports must list ports (1-65535) or ranges like 1025-65535"
        + (f", not {bad}." if bad else "; it is empty (squid would refuse every destination)."),
    )
    sizes = {
        name: s.get(name)
        for name in ("files_storage_size", "postgres_storage_size", "redis_storage_size", "weaviate_storage_size",
                     "plugin_storage_size", "backup_storage_size", "pgvector_storage_size")
    }  # fmt: skip
    check(
        all(QUANTITY.match(str(v)) for v in sizes.values()),
        "Storage sizes must be Kubernetes quantities such as 20Gi: "
        + ", ".join(f"dify_{k}={v}" for k, v in sizes.items())
        + ".",
    )
    known = components.resource_keys()
    unknown = sorted(set(s.resources) - set(known))
    check(
        not unknown,
        f"dify_resources has unknown components {unknown}; known: {sorted(known)}.",
    )
    check(
        not s.admin_email or bool(EMAIL.match(s.admin_email)),
        f"dify_admin_email '{s.admin_email}' is not an email address.",
    )
    check(
        1 <= len(s.admin_name) <= 30,
        f"dify_admin_name must have 1 to 30 characters (Dify's limit), it has {len(s.admin_name)}.",
    )
    check(
        not s.admin_password or bool(STRONG_PASSWORD.match(s.admin_password)),
        "dify_admin_password is too weak for Dify: it needs at least 8 characters with letters and digits "
        "(the value is not shown).",
    )
    reserved = sorted(k for k in s.extra_env if k in RESERVED_ENV)
    check(
        not reserved,
        f"dify_extra_env must not set {reserved}: credentials have their own variables (kept in a Secret) and "
        "MIGRATION_ENABLED stays false.",
    )
    for var in ("service_annotations", "ingress_annotations", "node_selector", "namespace_labels", "extra_env",
                "migration_pod_annotations", "provider_setup_pod_annotations", "backup_pod_annotations",
                "tools_pod_annotations"):  # fmt: skip
        bad = sorted(k for k, v in (s.get(var) or {}).items() if not isinstance(v, str))
        check(not bad, f"dify_{var}: the values of {bad} must be strings (quote them).")
    for var in ("wait_timeout", "migration_timeout", "loadbalancer_timeout", "provider_setup_timeout"):
        check(s.get(var) > 0, f"dify_{var} must be a positive number of seconds, got {s.get(var)}.")
    check(s.backup_keep >= 1, f"dify_backup_keep must be at least 1, got {s.backup_keep}.")
    check(
        s.autoscaling_max_replicas >= 1 and 1 <= s.autoscaling_cpu_percent <= 100,
        "dify_autoscaling_max_replicas must be at least 1 and dify_autoscaling_cpu_percent between 1 and 100.",
    )
    return found


def validate(s: Settings) -> None:
    found = problems(s)
    if found:
        raise InputError("Nothing was changed. " + " ".join(found), problems=found)
