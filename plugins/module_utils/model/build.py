# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prepare step: from the validated variables and one read of the cluster to the model of the
installation. It decides (credentials, release, what the phases will do) and changes nothing.

Every entry point (site, manifests, migrate, status, restore, uninstall) runs it; the phases
that change the cluster only apply what it returns.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any, Callable

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import lock, migration, names, records
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import DISCOVERY
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import DifyError, InputError, JobFailed
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import job_state
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_args import migrate_spec_of
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import record_view
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import (
    adopt,
    catalog,
    components,
    credentials,
    inputs,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import (
    pgvector,
    plugin_daemon,
    vector_stores,
    weaviate,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.nginx import GATEWAY_API
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.monitoring import MONITORING_API
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.objects import Builder
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, Settings

ENTRY_POINTS = ("main", "manifests", "migrate_only", "status", "restore", "uninstall", "adopt", "images")

# What uninstall removes, in this order: every object of these kinds carrying our labels. Volumes,
# Secrets and the records that describe the data (records.py: migration, backups, provider setup,
# adoption, the operation under way) stay.
UNINSTALL_KINDS = [
    {"api_version": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"},
    {"api_version": "policy/v1", "kind": "PodDisruptionBudget"},
    {"api_version": "networking.k8s.io/v1", "kind": "Ingress"},
    # (Kinds of CRDs the cluster does not serve have nothing to prune.)
    {"api_version": GATEWAY_API, "kind": "HTTPRoute"},
    {"api_version": MONITORING_API, "kind": "ServiceMonitor"},
    {"api_version": "apps/v1", "kind": "Deployment"},
    {"api_version": "apps/v1", "kind": "StatefulSet"},
    {"api_version": "v1", "kind": "Service"},
    {"api_version": "batch/v1", "kind": "Job"},
    {"api_version": "v1", "kind": "ConfigMap",
     "label_selector": records.NOT_A_RECORD},
    # Last: the policies protect the pods until they are gone.
    {"api_version": "networking.k8s.io/v1", "kind": "NetworkPolicy"},
]  # fmt: skip
# What only dify_purge_data removes.
PURGE_KINDS = [
    {"api_version": "v1", "kind": "PersistentVolumeClaim"},
    {"api_version": "v1", "kind": "Secret"},
    {"api_version": "v1", "kind": "ConfigMap"},
    {"api_version": "coordination.k8s.io/v1", "kind": "Lease"},
]

ReadFn = Callable[[list[dict[str, Any]]], dict[str, dict[str, list[dict[str, Any]]]]]


def _first(found: dict[str, dict[str, list[dict[str, Any]]]], read_id: str) -> dict[str, Any] | None:
    resources = (found.get(read_id) or {}).get("resources") or []
    return resources[0] if resources else None


def wanted_classes(s: Settings) -> dict[str, str]:
    classes = {"dify_storage_class": s.storage_class}
    if s.files_storage == "pvc":
        classes["dify_files_storage_class"] = s.files_storage_class
    return {var: name for var, name in classes.items() if name}


def reads(s: Settings, entry_point: str) -> list[dict[str, Any]]:
    """Everything the entry point needs to know of the cluster, read once."""
    ns = s.namespace

    def read(read_id: str, kind: str, name: str | None = None, api_version: str = "v1", **extra: Any) -> dict:
        out = {"id": read_id, "api_version": api_version, "kind": kind, "namespace": ns, **extra}
        if name:
            out["name"] = name
        return out

    if entry_point in ("uninstall", "images"):
        return []  # (images: what an install of these settings pulls, without a cluster)
    found = [
        read("credentials", "Secret", names.CREDENTIALS),
        read("migration_record", "ConfigMap", names.MIGRATION_RECORD),
        read("migration_job", "Job", names.MIGRATION_JOB, "batch/v1"),
        # Whether that Job finished is told by its pod first (job.job_state).
        read("migration_pods", "Pod", label_selector=f"job-name={names.MIGRATION_JOB}"),
    ]
    if s.credentials_secret and entry_point in credentials.WRITING_ENTRY_POINTS:
        found.append(read("user_credentials", "Secret", s.credentials_secret))
    if entry_point == "adopt":
        # The running Dify to adopt: everything its pods are made of.
        src = s.adopt_namespace
        found += [
            {"id": f"source_{plural}", "api_version": api_version, "kind": kind, "namespace": src}
            for plural, api_version, kind in (
                ("deployments", "apps/v1", "Deployment"), ("statefulsets", "apps/v1", "StatefulSet"),
                ("configmaps", "v1", "ConfigMap"), ("secrets", "v1", "Secret"), ("services", "v1", "Service"),
                ("pods", "v1", "Pod"),
            )
        ]  # fmt: skip
    if entry_point in ("main", "manifests", "migrate_only", "adopt"):
        # The records of the data and a rotation of the database password under way (its Secret
        # holds the new password until the Secret dify-credentials does).
        found += [
            read("adoption_record", "ConfigMap", names.ADOPTION_RECORD),
            read("rotation_pending", "Secret", names.ROTATION_SECRET),
            # Left behind by an adoption whose controller died during the copy.
            read("adopt_source_secret", "Secret", names.ADOPT_SOURCE_SECRET),
            read("upgrade_steps", "ConfigMap", names.UPGRADE_STEPS_RECORD),
        ]
        # What runs now: the plan of an upgrade (components added and removed, images changed),
        # and the Weaviate the upgrade starts from.
        found += [
            read("deployments", "Deployment", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
            read("statefulsets", "StatefulSet", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
            read("backup_record", "ConfigMap", names.BACKUP_RECORD),
        ]
        if credentials.provider_setup_enabled(s):
            found += [
                read("provider_keys", "Secret", names.PROVIDER_KEYS),
                read("provider_record", "ConfigMap", names.PROVIDER_SETUP_RECORD),
            ]
        if s.bundled(DATABASE):
            found.append(read("db_volume", "PersistentVolumeClaim", names.statefulset_claim(s.provider(DATABASE))))
        if weaviate.bundled(s):
            found.append(read("weaviate_volume", "PersistentVolumeClaim", names.statefulset_claim("weaviate")))
        if s.get("plugin_storage_access_mode", "ReadWriteOnce") != "ReadWriteOnce" or s.get("plugin_storage_class"):
            # Its access mode and class cannot change: the volume there is checked first.
            found.append(read("plugin_volume", "PersistentVolumeClaim", names.PLUGIN_PVC))
        if wanted_classes(s) and s.cluster_scoped_access:
            found.append({"id": "storage_classes", "api_version": "storage.k8s.io/v1", "kind": "StorageClass"})
        # What the cluster serves: the Gateway API (dify_expose: gateway, and a route to remove),
        # the Prometheus operator's ServiceMonitor (dify_metrics_enabled).
        found.append({"id": "api_versions", "api_version": "v1", "kind": DISCOVERY})
    if entry_point in ("status", "restore"):
        found.append(read("backup_record", "ConfigMap", names.BACKUP_RECORD))
    if entry_point == "restore":
        # The Weaviate that runs: the release restored to must be able to open its data; what writes
        # to the database, with the replicas it runs (scaled back to them afterwards).
        found += [
            read("statefulsets", "StatefulSet", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
            read("deployments", "Deployment", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
        ]
    if entry_point in ("main", "migrate_only", "restore", "adopt"):
        # A restore under way (or cut short): what ran before it stopped the writers.
        found.append(read("operation", "ConfigMap", names.OPERATION_RECORD))
    if entry_point == "status":
        found += [
            read("deployments", "Deployment", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
            read("statefulsets", "StatefulSet", api_version="apps/v1", label_selector=names.MANAGED_SELECTOR),
            read("nginx_service", "Service", names.workload("nginx")),
        ]
        if s.expose == "gateway":
            found.append(read("http_route", "HTTPRoute", names.HTTP_ROUTE, GATEWAY_API))
    return found


def images(s: Settings, release: catalog.Release) -> dict[str, str]:
    """Every image, with the registry prefix of air-gapped sites."""
    prefix = (s.image_registry.rstrip("/") + "/") if s.image_registry else ""
    return {component: prefix + image for component, image in release.images.items()}


def _phase_prune(components: list[str]) -> str:
    return f"{names.LABEL_COMPONENT} in ({','.join(sorted(components))})"


def prepare(
    params: dict[str, Any],
    entry_point: str,
    read: ReadFn,
    assets: dict[str, str] | None = None,
    releases: dict[str, Any] | None = None,
    new_secret: Callable[[], str] = credentials.random_hex,
    new_admin_password: Callable[[], str] = credentials.random_admin_password,
    new_agent_key: Callable[[], str] | None = None,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The model of the installation for one entry point (no secret leaves it but in ``secrets``
    and ``rotation_secret``: the caller keeps the whole result out of the output)."""
    if entry_point not in ENTRY_POINTS:
        raise InputError(f"entry_point must be one of {', '.join(ENTRY_POINTS)}, got {entry_point!r}")
    s = Settings(params)
    if entry_point == "uninstall":
        if not inputs.DNS_LABEL.match(s.namespace):
            raise InputError(f"dify_namespace '{s.namespace}' is not a valid namespace name (lowercase DNS label).")
        if s.purge_data and s.get("purge_confirm", "") != s.namespace:
            raise InputError(
                f"Nothing was changed. dify_purge_data deletes every volume, the credentials, the backups and the "
                f"records of {s.namespace}: nothing can be restored afterwards. Set dify_purge_confirm to the "
                f"namespace ({s.namespace}) to confirm."
            )
        kinds = copy.deepcopy(UNINSTALL_KINDS) + (copy.deepcopy(PURGE_KINDS) if s.purge_data else [])
        selector = f"{names.MANAGED_SELECTOR},{names.LABEL_NAME}={names.APP}"
        return {"changed": False, "entry_point": entry_point, "uninstall": {"prune_kinds": kinds, "selector": selector}}
    if entry_point == "restore":
        check_restore_request(s)

    inputs.validate(s)
    if entry_point == "adopt" and not s.adopt_namespace:
        raise InputError("Nothing was changed. dify_adopt_namespace (the namespace of the running Dify) is required.")
    asked = reads(s, entry_point)
    try:
        found = read(asked)
    except DifyError as exc:
        raise type(exc)(f"Nothing was changed: {exc}", **exc.details) from exc
    adoption = None
    if entry_point == "adopt":
        adoption = adopt.plan(s, found, releases or {}, credentials.decode(_first(found, "credentials")))
        s = adoption.settings
    if entry_point in credentials.WRITING_ENTRY_POINTS:
        s = credentials.from_user_secret(s, _first(found, "user_credentials"))

    # What exists.
    stored = credentials.decode(_first(found, "credentials"))
    stored_provider = credentials.decode(_first(found, "provider_keys"))
    record_cm = _first(found, "migration_record")
    record = (record_cm or {}).get("data") if record_cm else None
    migration_job = _first(found, "migration_job")
    if "storage_classes" in found:
        existing = sorted(o["metadata"]["name"] for o in found["storage_classes"]["resources"])
        missing = [f"{var} '{name}' is not a StorageClass of this cluster; existing: {existing}."
                   for var, name in wanted_classes(s).items() if name not in existing]  # fmt: skip
        if missing:
            raise InputError("Nothing was changed. " + " ".join(missing))

    plugin_daemon.check_volume(s, _first(found, "plugin_volume"))
    running = live_images(found)
    # The vector store the data is in: another one only when asked (Dify does not move vectors).
    store_notice = ""
    if entry_point in credentials.WRITING_ENTRY_POINTS:
        store_notice = vector_stores.check_switch(s, _first(found, "credentials"), bool(record) or bool(running))
    backups = _backups(_first(found, "backup_record"))
    prefix = (s.image_registry.rstrip("/") + "/") if s.image_registry else ""
    # Weaviate's volume without its StatefulSet (after an uninstall) holds the data of the Weaviate
    # of the release last migrated here: the steps and the copy start from that one.
    weaviate_live, weaviate_notice = running.get("weaviate", ""), ""
    if not weaviate_live and weaviate.bundled(s) and _first(found, "weaviate_volume") and (record or {}).get("image"):
        recorded = catalog.weaviate_of(releases or {}, catalog.tag_of(record["image"]))
        if recorded:
            weaviate_live = prefix + recorded
            weaviate_notice = (
                f"Weaviate's volume {names.statefulset_claim('weaviate')} has no Weaviate running; it holds the "
                f"data of Weaviate {catalog.tag_of(recorded)} (the catalog's for {catalog.tag_of(record['image'])}, "
                "last migrated here), which the upgrade of Weaviate starts from."
            )
    live = dict(running, weaviate=weaviate_live) if weaviate_live else running
    if entry_point == "images" and s.get("images_upgrade_from") and weaviate.bundled(s):
        # The Weaviate of the release upgraded from: its steps are pulled too.
        live = {"weaviate": prefix + catalog.weaviate_of(releases or {}, s.images_upgrade_from)}
    # (A restore runs another release afterwards: it checks that release's Weaviate itself.)
    # No downgrade below what the data is at, even when its record was deleted: then the api that runs says.
    # After a restore the data is at the restored release (the api Deployment still names the newer one).
    operation = (_first(found, "operation") or {}).get("data") or {}
    restored = operation.get("version") if operation.get("state") in ("restoring", "restored") else ""
    api_image = "" if restored else _running_api_image(found)
    at = record if (record or {}).get("image") else ({"image": api_image} if api_image else None)
    release = catalog.resolve(s, releases or {}, at, {} if entry_point == "restore" else live, backups)
    image_of = images(s, release)
    if "pgvector" in image_of:
        pgvector.check_image(running.get("pgvector", ""), image_of["pgvector"])
    if weaviate_notice and weaviate_live != image_of.get("weaviate"):
        release.notices.append(weaviate_notice)
    creds = credentials.decide(
        s,
        stored,
        stored_provider,
        db_volume_exists=_first(found, "db_volume") is not None,
        evidence=evidence(found),
        pending_rotation=(credentials.decode(_first(found, "rotation_pending")) or {}).get("NEW_PASSWORD", ""),
        entry_point=entry_point,
        new_secret=new_secret,
        new_admin_password=new_admin_password,
        agent=any(release.has(c) for c in catalog.AGENT_COMPONENTS),
        **({"new_agent_key": new_agent_key} if new_agent_key else {}),
    )
    if adoption is not None:
        adopt.check_postgres(adoption.source, image_of["postgres"])
    served = {r.get("groupVersion") for r in (found.get("api_versions") or {}).get("resources") or []}
    if s.expose == "gateway" and entry_point in ("main", "adopt") and GATEWAY_API not in served:
        raise InputError(
            f"Nothing was changed. dify_expose is gateway, but this cluster does not serve {GATEWAY_API} (the Gateway "
            "API's CRDs, standard channel): install them and a Gateway controller first, or choose another dify_expose."
        )
    # The release the data is at: the record's, else (a record deleted by hand) the api's that runs.
    previous = (record or {}).get("image", "") or api_image
    builder = Builder(
        s,
        image_of,
        creds,
        assets,
        previous_tag=catalog.tag_of(previous) if previous else "",
        release=release,
        stamp=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now())),
    )
    builder.api_versions = {v for v in served if v}
    model = build(builder)
    # A first install (no Dify runs, none was ever migrated here) starts what does not use Dify's
    # schema during the migration: nothing is serving that a new component could break. Every
    # Service comes along (nginx resolves its upstreams when it starts).
    first_install = not running and not record and entry_point == "main"  # (an adoption restores data first)
    early = components.schema_independent()
    model["early"] = [
        o for o in model["objects"]["app"]
        if first_install and (o["kind"] == "Service" or (o["kind"] == "Deployment"
                              and o["metadata"]["labels"].get(names.LABEL_COMPONENT) in early))
    ]  # fmt: skip
    model["weaviate_steps"] = [weaviate.step(prefix + image, model) for image in release.weaviate_steps]
    # The bundled Weaviate gets another image (an upgrade, steps included): its volume is copied first.
    weaviate_from = weaviate_live if weaviate.backup_wanted(s) else ""
    if weaviate_from and weaviate_from != image_of.get("weaviate"):
        model["weaviate_backup"] = weaviate.backup(builder, weaviate_from, model)

    if operation.get("state") == "restoring" and entry_point != "restore":
        raise InputError(
            f"Nothing was changed. A restore of {operation.get('backup')} was cut short (record "
            f"{names.OPERATION_RECORD}, started {operation.get('started')}): the database may be half restored and "
            f"Dify stays stopped. Run playbooks/restore.yml again with dify_restore_backup={operation.get('backup')} "
            f"and dify_restore_confirm={s.namespace} to finish it."
        )

    # What the phases will do: the migration's decision, as the module will take it again.
    try:
        decision = migration.decide(
            record,
            job_state(migration_job, (found.get("migration_pods") or {}).get("resources") or []),
            migrate_spec_of(s.namespace, model["jobs"]["migration"], force=s.migration_force),
        )
    except JobFailed as exc:
        raise JobFailed(f"Nothing was changed: {exc}", **exc.details) from exc
    migration_plan = decision.action
    # Release-specific upgrade steps: those this upgrade crosses (from the release the data is at, or
    # the adopted source's), and those recorded pending by a run that did not finish them.
    data_from = previous or (adoption.source.release if adoption is not None else "")
    done = {name: records.decode_json(entry, {}) for name, entry in
            ((_first(found, "upgrade_steps") or {}).get("data") or {}).items()}  # fmt: skip
    crossing = catalog.upgrade_steps(releases or {}, data_from, s.image_tag)
    steps = [step for step in (releases or {}).get("upgrade_steps") or []
             if done.get(step["name"], {}).get("state") == "pending"
             or (step in crossing and done.get(step["name"], {}).get("state") != "done")]  # fmt: skip
    if entry_point not in ("main", "migrate_only", "adopt"):
        steps = []
    # A retry of an upgrade whose backup completed (its migration then failed) takes no second one:
    # retries would push the good backups out (dify_backup_keep).
    taken = _backup_of_this_upgrade(backups, catalog.tag_of(previous) if previous else "", s.image_tag,
                                    (record or {}).get("completed_at", ""))  # fmt: skip
    reason = "forced re-run (dify_migration_force)" if s.migration_force else decision.reason
    plan: dict[str, Any] = {
        "migration": migration_plan,
        "migration_reason": reason,
        "migration_record": record_view(record),
        # Only an upgrade of existing data gets a backup (a first install has nothing to lose), and
        # only before a new migration Job (one that ran for this image may have changed the data).
        "backup": bool(
            s.backup_enabled
            and migration_plan == "run"
            and previous
            and not taken
            and (catalog.tag_of(previous) != s.image_tag or s.migration_force)
        ),
        "backup_from": previous.rsplit(":", 1)[-1] if previous else "",
        "backup_to": s.image_tag,
        "backup_name": builder.backup_name,
        "rotate_db_password": creds.rotate_db_password,
        "upgrade_steps": [step["name"] for step in steps],
        # What the role records before the migration (dify-upgrade-steps): each step pending.
        "upgrade_steps_pending": {
            step["name"]: {
                "state": "pending",
                "from": catalog.tag_of(data_from) if data_from else "",
                "to": s.image_tag,
            }
            for step in steps
        },
        # Short-lived Secrets to remove once Secret dify-credentials is written: the rotation's (its
        # password is in dify-credentials then), and a copy's source password an adoption left behind.
        "remove_secrets": [
            name
            for name, leftover in (
                (names.ROTATION_SECRET, creds.rotate_db_password or _first(found, "rotation_pending") is not None),
                (
                    names.ADOPT_SOURCE_SECRET,
                    entry_point != "adopt" and _first(found, "adopt_source_secret") is not None,
                ),
            )
            if leftover
        ],
        "provider_setup": False,
        "weaviate_steps": [catalog.tag_of(image) for image in release.weaviate_steps],
        # After a restore: the autoscaled Deployments it stopped, back to the replicas they ran
        # (their spec has none, an autoscaler does nothing at 0); the others follow their spec.
        "scale_back": {
            name: replicas
            for name, replicas in records.decode_json(operation.get("replicas"), {}).items()
            if name in {names.workload(c) for c in builder.autoscaled}
        }
        if operation.get("state") == "restored" and entry_point == "main"
        else {},
        "restore_done": operation.get("state") == "restored" and entry_point == "main",
        "weaviate_backup": "weaviate_backup" in model,
        "weaviate_backup_of": catalog.tag_of(weaviate_from) if "weaviate_backup" in model else "",
        "weaviate_backup_name": builder.weaviate_backup_name(weaviate_from) if "weaviate_backup" in model else "",
        "changes": changes(running, model),
        "notices": creds.notices
        + release.notices
        + ([store_notice] if store_notice else [])
        + ([f"The backup of this upgrade was taken already ({taken}); it is not taken again."] if taken else []),
    }
    if builder.provider_setup:
        fingerprint = creds.provider_fingerprint(s)
        stored_record = (_first(found, "provider_record") or {}).get("data") or {}
        plan["provider_setup"] = stored_record.get("fingerprint") != fingerprint
        plan["provider_fingerprint"] = fingerprint

    model["upgrade_steps"] = [
        {"name": step["name"], "job_name": f"{names.UPGRADE_STEP_JOB_PREFIX}{step['name']}",
         "pod": builder.upgrade_step(step), "from": catalog.tag_of(data_from) if data_from else "", "to": s.image_tag}
        for step in steps
    ]  # fmt: skip
    result: dict[str, Any] = {
        "changed": False,
        "entry_point": entry_point,
        # What this run decided on: taken again under the lock (dify_lock), a change means prepare again.
        "basis": {
            "reads": [r for r in asked if r["id"] in BASIS],
            "hash": lock.basis_of({k: v for k, v in found.items() if k in BASIS}),
        },
        "release": {
            "version": release.version,
            "line": release.line,
            "catalogued": release.known,
            "images": image_of,
            "components": release.components,
            "startup_migration": release.startup_migration,
            "notes": release.notes,
        },
        "plan": plan,
        "names": _names(),
        **model,
    }
    if creds.rotate_db_password:
        result["rotation_secret"] = builder.rotation_secret()
    if entry_point == "status":
        result["status_reads"] = {key: found.get(key, {"resources": []}) for key in
                                  ("deployments", "statefulsets", "migration_job", "migration_record",
                                   "nginx_service", "backup_record", "http_route")}  # fmt: skip
        api_image = _running_api_image(found)
        if api_image:
            result["jobs"]["status_probe"]["spec"]["containers"][0]["image"] = api_image
    if entry_point == "restore":
        result["restore"] = restore_plan(s, _backups(_first(found, "backup_record")), running.get("weaviate", ""),
                                         releases or {})  # fmt: skip
        result["restore"].update(restore_writers(found, operation))
    if adoption is not None:
        result["adopt"] = adopt.model(adoption, builder, model)
        plan["notices"] += adoption.notices
    if entry_point == "images":
        result["images"] = mirror_list(s, model)
    return result


def pulled_images(model: dict[str, Any]) -> list[str]:
    """Every image the model's pods run: the objects of every phase, the Jobs, Weaviate's steps."""
    pods = [o["spec"]["template"]["spec"] for phase in model["objects"].values() for o in phase
            if o["kind"] in ("Deployment", "StatefulSet")]  # fmt: skip
    pods += [job["spec"] for job in model["jobs"].values()]
    pods += [step["spec"]["template"]["spec"] for step in model.get("weaviate_steps") or []]
    found = {c["image"] for spec in pods for c in [*spec.get("initContainers", []), *spec["containers"]]}
    return sorted(found)


def mirror_list(s: Settings, model: dict[str, Any]) -> list[dict[str, str]]:
    """Each image as the public registries serve it (source) and as dify_image_registry pulls it (target)."""
    prefix = (s.image_registry.rstrip("/") + "/") if s.image_registry else ""
    return [{"source": image[len(prefix):] if prefix and image.startswith(prefix) else image, "target": image}
            for image in pulled_images(model)]  # fmt: skip


BACKUP_NAME = re.compile(r"^dify_[^_/]+_to_[^_/]+_[0-9]{8}T[0-9]{6}Z$")


def restore_writers(found: dict[str, Any], operation: dict[str, str]) -> dict[str, Any]:
    """What a restore stops: every Deployment of a component that uses the database, and the
    replicas each ran (those a restore cut short recorded before it stopped them)."""
    clients = {names.workload(c) for c in components.data_clients()}
    deployments = [o for o in (found.get("deployments") or {}).get("resources") or []
                   if o["metadata"]["name"] in clients]  # fmt: skip
    running = {o["metadata"]["name"]: int((o.get("spec") or {}).get("replicas", 1)) for o in deployments}
    recorded = records.decode_json(operation.get("replicas"), {}) if operation.get("operation") == "restore" else {}
    return {"writers": sorted(running), "replicas": dict(running, **recorded), "resumed": bool(recorded)}


def check_restore_request(s: Settings) -> None:
    if not BACKUP_NAME.match(s.restore_backup) or s.restore_confirm != s.namespace:
        raise InputError(
            "Nothing was changed. Set dify_restore_backup to a backup name as printed by the upgrade "
            f"(dify_<from>_to_<to>_<time>, e.g. dify_1.11.4_to_1.11.5_20261125T101500Z; got '{s.restore_backup}') and "
            f"dify_restore_confirm to the namespace ({s.namespace}) to confirm that its current data is replaced."
        )


def restore_plan(
    s: Settings, backups: dict[str, Any], running_weaviate: str = "", releases: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The backup to restore and the version to run afterwards (the one it was taken from). That
    version's Weaviate must be able to open the data of the Weaviate that runs: Weaviate never goes
    back, so an upgrade that moved it is refused here, before anything is stopped or restored."""
    entry = backups.get(s.restore_backup)
    version = s.restore_image_tag or (entry or {}).get("from", "")
    if not version:
        known = sorted(backups) or "none"
        raise InputError(
            f"Nothing was changed. dify_restore_backup {s.restore_backup} is not in the backup record (ConfigMap "
            f"{names.BACKUP_RECORD}; recorded: {known}). If the dump exists, set dify_restore_image_tag to the "
            "Dify version it was taken from."
        )
    wanted = s.get("weaviate_image") or catalog.weaviate_of(releases or {}, version)
    have_tag, want_tag = catalog.tag_of(running_weaviate), catalog.tag_of(wanted)
    have, want = catalog.version_tuple(have_tag), catalog.version_tuple(want_tag)
    if weaviate.bundled(s) and have and want and want[:2] < have[:2]:
        copy = (entry or {}).get("weaviate")
        by_hand = (
            f"put back the copy of Weaviate's volume taken before that upgrade ({copy}) by hand first"
            if copy
            else "put back a copy of Weaviate's volume of that time by hand first"
        )
        raise InputError(
            f"Nothing was changed. Weaviate runs {have_tag}; Dify {version}, which dify_restore_backup "
            f"{s.restore_backup} goes back to, runs Weaviate {want_tag}, and Weaviate cannot open the data of a newer "
            f"version. Set dify_restore_image_tag to a release whose Weaviate is {have_tag} or newer (the databases "
            f'are restored, and that release migrates them again), or {by_hand} (docs/day2.md, "Restoring a copy '
            'of Weaviate").'
        )
    return {"backup": s.restore_backup, "version": version, "record": entry}


def live_images(found: dict[str, Any]) -> dict[str, str]:
    """The image each running workload's first container has, by component."""
    out = {}
    for read_id in ("deployments", "statefulsets"):
        for obj in (found.get(read_id) or {}).get("resources") or []:
            component = ((obj.get("metadata") or {}).get("labels") or {}).get(names.LABEL_COMPONENT)
            containers = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
            if component and containers:
                out[component.replace("-", "_")] = containers[0].get("image", "")
    return out


def changes(running: dict[str, str], model: dict[str, Any]) -> dict[str, Any]:
    """What an upgrade changes: components added and removed, images changed (check mode shows it)."""
    wanted = {}
    for obj in model["objects"]["data"] + model["objects"]["app"]:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            component = obj["metadata"]["labels"][names.LABEL_COMPONENT].replace("-", "_")
            wanted[component] = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    if not running:
        return {"added": sorted(wanted), "removed": [], "images": {}}
    return {
        "added": sorted(set(wanted) - set(running)),
        "removed": sorted(set(running) - set(wanted)),
        "images": {c: {"from": running[c], "to": wanted[c]} for c in sorted(set(wanted) & set(running))
                   if running[c] != wanted[c]},
    }  # fmt: skip


# The reads that hold what a run decides on (credentials, records): not the workloads, whose status
# changes all the time.
BASIS = ("credentials", "user_credentials", "provider_keys", "migration_record", "backup_record", "provider_record",
         "adoption_record", "rotation_pending", "upgrade_steps", "operation")  # fmt: skip


def evidence(found: dict[str, Any]) -> list[str]:
    """What shows that this namespace holds (or held) an installation: its credentials must then
    never be generated anew."""
    out = []
    for read_id, what in (("migration_record", f"the migration record {names.MIGRATION_RECORD}"),
                          ("db_volume", "the database volume"), ("adoption_record", "the adoption record"),
                          ("backup_record", "the backup record"), ("deployments", "Dify's Deployments")):  # fmt: skip
        if (found.get(read_id) or {}).get("resources"):
            out.append(what)
    return out


def _backup_of_this_upgrade(backups: dict[str, Any], from_tag: str, to_tag: str, migrated_at: str) -> str:
    """A recorded backup of this very upgrade, taken after the data was last migrated ('' if none)."""
    stamp = re.sub(r"[^0-9]", "", migrated_at)[:14]
    for name, entry in sorted(backups.items(), reverse=True):
        taken = re.sub(r"[^0-9]", "", str(entry.get("time", "")))[:14]
        if from_tag and entry.get("from") == from_tag and entry.get("to") == to_tag and taken >= stamp:
            return name
    return ""


def _running_api_image(found: dict[str, Any]) -> str:
    for obj in (found.get("deployments") or {}).get("resources") or []:
        if obj["metadata"]["name"] == names.workload("api"):
            return obj["spec"]["template"]["spec"]["containers"][0].get("image", "")
    return ""


def _backups(record_cm: dict[str, Any] | None) -> dict[str, Any]:
    out = {}
    for name, text in ((record_cm or {}).get("data") or {}).items():
        try:
            out[name] = json.loads(text)
        except ValueError:
            continue
    return out


def _names() -> dict[str, str]:
    """The names the task files use (from names.py, the one place they are given)."""
    return {
        "credentials": names.CREDENTIALS,
        "provider_keys": names.PROVIDER_KEYS,
        "migration_job": names.MIGRATION_JOB,
        "migration_record": names.MIGRATION_RECORD,
        "backup_job": names.BACKUP_JOB,
        "backup_record": names.BACKUP_RECORD,
        "backups_pvc": names.BACKUPS_PVC,
        "weaviate_backup_job": names.WEAVIATE_BACKUP_JOB,
        "restore_job": names.RESTORE_JOB,
        "restore_check_job": names.RESTORE_CHECK_JOB,
        "operation_record": names.OPERATION_RECORD,
        "status_job": names.STATUS_JOB,
        "rotation_job": names.ROTATION_JOB,
        "rotation_secret": names.ROTATION_SECRET,
        "provider_setup_job": names.PROVIDER_SETUP_JOB,
        "provider_setup_record": names.PROVIDER_SETUP_RECORD,
        "nginx_service": names.workload("nginx"),
        "managed_selector": names.MANAGED_SELECTOR,
        "adoption_record": names.ADOPTION_RECORD,
        "adopt_source_secret": names.ADOPT_SOURCE_SECRET,
        "adopt_db_job": names.ADOPT_DB_JOB,
        "field_manager": names.FIELD_MANAGER,
        "migration_component": names.MIGRATION,
    }


def build(b: Builder) -> dict[str, Any]:
    """The objects of every phase, what each phase prunes, and the pods of the Jobs."""
    s = b.s
    config_maps = b.config_maps()
    config_data = {cm["metadata"]["name"]: cm["data"] for cm in config_maps}
    deployments = b.deployments()
    statefulsets = b.statefulsets()
    running = [w.name for w in deployments] + [w.name for w in statefulsets] + list(components.job_components())

    config = ([b.namespace_object()] if s.cluster_scoped_access else []) + config_maps + b.volume_claims()
    if s.network_policies:
        config += b.network_policies(running)
    data = [b.service(w.name, w.service_ports) for w in statefulsets]
    data += [b.statefulset(w, config_data) for w in statefulsets]
    app = [b.service(w.name, w.service_ports) for w in deployments if w.service_ports]
    app += [b.deployment(w, config_data) for w in deployments]
    app += b.budgets(deployments) + b.autoscalers(deployments)
    app += b.service_monitors(deployments + statefulsets)
    expose = [b.nginx_service()] + ([b.ingress()] if s.expose == "ingress" else [])
    expose += [b.http_route()] if s.expose == "gateway" else []

    prune = {
        # With dify_network_policies off, existing ones go. ConfigMaps a setting no longer asks for
        # (the provider setup script, PostgreSQL's init script) go; records of the data never do.
        "config": [
            {"api_version": "networking.k8s.io/v1", "kind": "NetworkPolicy"},
            {
                "api_version": "v1",
                "kind": "ConfigMap",
                "label_selector": records.NOT_A_RECORD,
            },
        ],
        # A bundled data service switched to an external one: its StatefulSet and Service go (its
        # volume stays).
        "data": [
            {"api_version": "apps/v1", "kind": "StatefulSet"},
            {
                "api_version": "v1",
                "kind": "Service",
                "label_selector": _phase_prune(list(components.data_components(s))),
            },
        ],
        # Budgets and autoscalers the settings no longer ask for go first: a leftover autoscaler
        # would scale a Deployment back up right after it was applied, a leftover budget on a
        # single pod would block node drains.
        "app": [
            {"api_version": "policy/v1", "kind": "PodDisruptionBudget"},
            {"api_version": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"},
            {"api_version": "apps/v1", "kind": "Deployment"},
            {
                "api_version": "v1",
                "kind": "Service",
                # (nginx's Service is the expose phase's.)
                "label_selector": f"{names.LABEL_COMPONENT} notin "
                f"({','.join([*components.data_components(s), *components.exposed()])})",
            },
        ],
        "expose": [{"api_version": "networking.k8s.io/v1", "kind": "Ingress"}],
    }
    # Kinds of CRDs where the cluster serves them: a route or monitor no longer asked for goes.
    if s.expose == "gateway" or b.serves(GATEWAY_API):
        prune["expose"].append({"api_version": GATEWAY_API, "kind": "HTTPRoute"})
    if b.serves(MONITORING_API):
        prune["app"].append({"api_version": MONITORING_API, "kind": "ServiceMonitor"})
    return {
        "objects": {"config": config, "data": data, "app": app, "expose": expose},
        "secrets": b.secrets(),
        "prune": prune,
        "jobs": b.jobs(),
    }
