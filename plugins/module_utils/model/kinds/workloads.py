# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployments and StatefulSets: every component's workload (its module describes it as data,
components.base.Workload) rendered by the same functions, so a setting reaches every pod alike."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import api, postgres
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    PROBE_DEFAULTS,
    RUNTIME_DEFAULT,
    STATEFULSET,
    Workload,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Workloads(BuilderBase):
    def deployments(self) -> list[Workload]:
        return [c.pod(c, self) for c in components.running(self.s, self.release, DEPLOYMENT) if c.pod]

    def statefulsets(self) -> list[Workload]:
        return [c.pod(c, self) for c in components.running(self.s, self.release, STATEFULSET) if c.pod]

    def api_pod(self) -> dict[str, Any]:
        return api.pod(self)

    def postgres_pod(self) -> dict[str, Any]:
        return postgres.tools_pod(self)

    # ------------------------------------------------------------------ pods
    def pod_spec(self, pod_security: dict[str, Any], containers: list[dict[str, Any]],
                 volumes: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        s = self.s
        spec: dict[str, Any] = {
            "automountServiceAccountToken": False,
            # No *_SERVICE_HOST/*_PORT variables: names like DIFY_API_PORT would clash with Dify's own.
            "enableServiceLinks": False,
            "securityContext": dict(pod_security, seccompProfile=dict(RUNTIME_DEFAULT)),
        }
        if s.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in s.image_pull_secrets]
        if s.node_selector:
            spec["nodeSelector"] = dict(s.node_selector)
        if s.tolerations:
            spec["tolerations"] = copy.deepcopy(s.tolerations)
        spec["containers"] = containers
        if volumes:
            spec["volumes"] = volumes
        return spec

    def container(self, w: Workload) -> dict[str, Any]:
        c: dict[str, Any] = {"name": w.name, "image": w.image, "imagePullPolicy": self.s.image_pull_policy}
        if w.command is not None:
            c["command"] = list(w.command)
        if w.args is not None:
            c["args"] = list(w.args)
        if w.env:
            c["env"] = copy.deepcopy(w.env)
        if w.env_from:
            c["envFrom"] = copy.deepcopy(w.env_from)
        if w.ports:
            c["ports"] = [dict(p, protocol="TCP") for p in w.ports]
        for key, probe in (("readinessProbe", w.readiness), ("livenessProbe", w.liveness),
                           ("startupProbe", w.startup)):  # fmt: skip
            if probe is not None:
                c[key] = dict(PROBE_DEFAULTS, **probe)
        c["resources"] = copy.deepcopy(self.resources[w.resources_key])
        c["securityContext"] = copy.deepcopy(w.security)
        mounts = list(w.mounts)
        if w.data_path:
            mounts = [{"name": "data", "mountPath": w.data_path}, *mounts]
        if mounts:
            c["volumeMounts"] = copy.deepcopy(mounts)
        return c

    def config_hash(self, pod_spec: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> str:
        """A hash of exactly the configuration a pod reads (the ConfigMaps, and the Secrets and
        Secret keys it references, whichever the installation writes): the pod restarts when, and
        only when, that changes. Keyed with SECRET_KEY where Secret values are part of it, so the
        hash shows whether they changed, never what."""
        secrets = {name: data for name, (_component, data) in self.secret_values().items()}
        parts: list[Any] = []
        uses_secret = False
        for container in pod_spec["containers"]:
            for item in container.get("envFrom") or []:
                if "configMapRef" in item:
                    ref = item["configMapRef"]["name"]
                    parts.append(["configmap", ref, config_maps.get(ref)])
                if "secretRef" in item:
                    ref = item["secretRef"]["name"]
                    parts.append(["secret", ref, secrets.get(ref)])
                    uses_secret = True
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                if "secretKeyRef" in source:
                    ref, key = source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]
                    parts.append(["secret-key", ref, key, secrets.get(ref, {}).get(key)])
                    uses_secret = True
                if "configMapKeyRef" in source:
                    ref, key = source["configMapKeyRef"]["name"], source["configMapKeyRef"]["key"]
                    parts.append(["configmap-key", ref, key, (config_maps.get(ref) or {}).get(key)])
        for volume in pod_spec.get("volumes") or []:
            if "configMap" in volume:
                ref = volume["configMap"]["name"]
                parts.append(["configmap", ref, config_maps.get(ref)])
            if "secret" in volume:
                ref = volume["secret"]["secretName"]
                parts.append(["secret", ref, secrets.get(ref)])
                uses_secret = True
        text = json.dumps(parts, sort_keys=True).encode()
        if uses_secret:
            return hmac.new(self.creds.values["SECRET_KEY"].encode(), text, hashlib.sha256).hexdigest()
        return hashlib.sha256(text).hexdigest()

    # ------------------------------------------------------------------ workloads
    def deployment(self, w: Workload, config_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
        selector = names.selector(w.name)
        spec = self.pod_spec(w.pod_security, [self.container(w)], w.volumes)
        # Replicas on different nodes (a hard rule with dify_ha) and zones; only pods of the same
        # ReplicaSet count, so a rolling update is not blocked by the old pods.
        spread = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "DoNotSchedule"
                if (self.s.ha and key == "kubernetes.io/hostname")
                else "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
                "matchLabelKeys": ["pod-template-hash"],
            }
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]
        spec = dict(spec)
        containers = spec.pop("containers")
        volumes = spec.pop("volumes", None)
        spec["topologySpreadConstraints"] = spread
        spec["containers"] = containers
        if volumes:
            spec["volumes"] = volumes
        deployment_spec: dict[str, Any] = {}
        if w.name not in self.autoscaled:
            deployment_spec["replicas"] = w.replicas
        deployment_spec.update(
            revisionHistoryLimit=5,
            strategy=copy.deepcopy(w.strategy),
            selector={"matchLabels": dict(selector)},
            template={
                "metadata": {
                    "labels": dict(names.labels(w.name), **selector),
                    # Changes of the configuration this pod reads restart it.
                    "annotations": {
                        names.CONFIG_HASH: self.config_hash(spec, config_maps),
                        **self.scrape_annotations(w),
                    },
                },
                "spec": spec,
            },
        )
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(names.workload(w.name), w.name),
                "spec": deployment_spec}  # fmt: skip

    def statefulset(self, w: Workload, config_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
        selector = names.selector(w.name)
        spec = self.pod_spec(w.pod_security, [self.container(w)], w.volumes)
        claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
        if self.s.storage_class:
            claim_spec["storageClassName"] = self.s.storage_class
        claim_spec["resources"] = {"requests": {"storage": w.data_size}}
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": self.meta(names.workload(w.name), w.name),
            "spec": {
                "replicas": 1,
                "serviceName": names.workload(w.name),
                "selector": {"matchLabels": dict(selector)},
                # The data outlives the StatefulSet: uninstall keeps it unless asked (dify_purge_data).
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {
                        "labels": dict(names.labels(w.name), **selector),
                        "annotations": {
                            names.CONFIG_HASH: self.config_hash(spec, config_maps),
                            **self.scrape_annotations(w),
                        },
                    },
                    "spec": spec,
                },
                "volumeClaimTemplates": [
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data", "labels": names.labels(w.name)},
                        "spec": claim_spec,
                    }
                ],
            },
        }
