# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health of an installation, from what prepare read and what the status probe printed."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import job_outcome


def _resources(reads: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list((reads.get(key) or {}).get("resources") or [])


def probe_result(probe: dict[str, Any] | None, check_mode: bool) -> dict[str, Any]:
    """What the probe Job found (its report), or why there is none."""
    if check_mode:
        return {"skipped": "check mode"}
    probe = probe or {}
    if isinstance(probe.get("report"), dict):
        return probe["report"]
    if probe.get("failed"):
        return {"error": probe.get("msg") or "the probe Job failed"}
    return {"error": "it printed no result; last lines: " + " | ".join((probe.get("logs") or [])[-3:])}


def route_state(route: dict[str, Any] | None) -> tuple[str, str]:
    """The address of the HTTPRoute (its first host name; TLS ends at the Gateway) and what is
    wrong with it: missing, or accepted by no Gateway (its parents' Accepted conditions)."""
    if not route:
        return "", f"the HTTPRoute {names.HTTP_ROUTE} is missing (dify_expose is gateway)"
    hosts = (route.get("spec") or {}).get("hostnames") or []
    address = f"https://{hosts[0]}" if hosts else ""
    conditions = [(parent.get("parentRef") or {}, c) for parent in (route.get("status") or {}).get("parents") or []
                  for c in parent.get("conditions") or [] if c.get("type") == "Accepted"]  # fmt: skip
    if any(c.get("status") == "True" for _ref, c in conditions):
        return address, ""
    why = "; ".join(f"{ref.get('name', '?')}: {c.get('reason', '')} {c.get('message', '')}".strip()
                    for ref, c in conditions)  # fmt: skip
    return address, f"no Gateway accepted the HTTPRoute {names.HTTP_ROUTE}" + (
        f" ({why})" if why else " (no Gateway controller answered yet)"
    )


def assess(
    reads: dict[str, Any],
    probe: dict[str, Any] | None = None,
    check_mode: bool = False,
    namespace: str = "dify",
    expose: str = "loadbalancer",
    database: str = "dify",
    vector_store: str = "weaviate",
) -> dict[str, Any]:
    """Workloads and their readiness, the last migration, the address, the probe, and every
    problem in words."""
    workloads = _resources(reads, "deployments") + _resources(reads, "statefulsets")
    job = (_resources(reads, "migration_job") or [{}])[0]
    record = ((_resources(reads, "migration_record") or [{}])[0]).get("data") or {}
    service = (_resources(reads, "nginx_service") or [{}])[0]
    problems: list[str] = []

    states = {}
    for obj in workloads:
        name = obj["metadata"]["name"]
        want = (obj.get("spec") or {}).get("replicas", 1)
        have = (obj.get("status") or {}).get("readyReplicas", 0)
        states[name] = f"{have}/{want}"
        if want == 0:
            problems.append(f"{name} is scaled to 0")
        elif have != want:
            problems.append(f"{name} is not ready")
    if not workloads:
        problems.append(f"no Dify workloads in namespace {namespace}")

    job_image = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}])[0].get(
        "image", ""
    )
    outcome = job_outcome(job) if job else None
    job_failed = outcome == "failed"
    api_image = next(
        (w["spec"]["template"]["spec"]["containers"][0]["image"] for w in workloads
         if w["kind"] == "Deployment" and w["metadata"]["name"] == names.workload("api")),
        "",
    )  # fmt: skip
    try:
        revisions = [r.get("to") for r in json.loads(record.get("applied_revisions") or "[]")]
    except ValueError:
        revisions = []
    migration = {
        "migrated_image": record.get("image", ""),
        "completed_at": record.get("completed_at", ""),
        "applied_revisions": revisions,
        "last_job_image": job_image,
        "last_job": "failed" if job_failed else "succeeded" if outcome == "succeeded" else
                    "running" if job else "none (cleaned up)",
    }  # fmt: skip
    if not record:
        problems.append(f"no successful migration is recorded (ConfigMap {names.MIGRATION_RECORD})")
    if job_failed:
        problems.append(f"the last migration (Job {names.MIGRATION_JOB}, {job_image}) failed")
    if record and api_image and record.get("image") != api_image and not job_failed:
        problems.append(f"the api runs {api_image} but the last successful migration was for {record.get('image')}")

    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = f"http://{ingress[0].get('ip') or ingress[0].get('hostname')}" if ingress else ""
    if expose == "loadbalancer" and not address:
        problems.append("the LoadBalancer has no address")
    if expose == "gateway":
        address, problem = route_state((_resources(reads, "http_route") or [None])[0])
        problems += [problem] if problem else []

    found = probe_result(probe, check_mode)
    if "error" in found:
        problems.append(f"the status probe (Job {names.STATUS_JOB}) failed: {found['error']}")
    elif not check_mode:
        if int(found.get("tables") or 0) <= 0:
            problems.append(f"the database check failed: {found.get('database_error') or 'no tables in ' + database}")
        if "database_error" not in found and not found.get("alembic_revision"):
            problems.append(
                "the database has no Alembic revision (table alembic_version): the schema was never migrated"
            )
        daemon = found.get("plugin_daemon") or {}
        if daemon.get("status") != 200:
            problems.append(f"the api cannot reach the plugin daemon: {daemon.get('error') or json.dumps(daemon)}")
    return {
        "namespace": namespace,
        "vector_store": vector_store,
        "workloads": states,
        "migration": migration,
        "address": address,
        "probe": found,
        "problems": problems,
    }
