"""The fault tier: every entry point interrupted, then run again, must converge without losing
anything. The play is killed (ansible-playbook and its workers, as a controller that dies) at task
boundaries and a few seconds into long tasks (a Job followed, a rollout waited for); the same
command is then run again, as an operator would, and the invariants are checked:

- it converges: rc 0, every workload ready at the release wanted, none left at 0 replicas;
- SECRET_KEY and the passwords are the ones the installation had (or, on a first install, the
  ones the first run wrote) and the same everywhere they are used;
- the data is never copied twice, no migration runs on a half state, the lock is released.

Each interruption runs in a fresh namespace built to the scenario's starting state. The boundaries
of each scenario are found by a first, uninterrupted run (the callback plugin dify_fault lists them).
A boundary is the moment before a task that changes something (CHANGING), the last one being the
lock's release.
Every one is tried; DIFY_CE_FAULTS_EVERY=n tries every n-th only (a quicker look while changing an
entry point). The tier prints "N interruptions, N converged" at the end (docs/reliability.md).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from cluster_fixtures import ROOT, VENV_BIN, Cluster, install_adoption_source, run_playbook

pytestmark = pytest.mark.faults

HERE = Path(__file__).resolve().parent
# Each scenario's interruptions and outcomes (summary.py adds them up).
RESULTS_DIR = Path(os.environ.get("DIFY_CE_FAULTS_RESULTS") or ROOT / "tests" / "output" / "faults")


def interrupted_run(cluster: Cluster, playbook: str, extra_vars: dict[str, Any], kill_at: int = 0,
                    after: float = 0, record: Path | None = None) -> int:  # fmt: skip
    """ansible-playbook in a process group of its own (what the callback kills), as users run it."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars, handle)
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="dify_fault",
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=cluster.kubeconfig,
        PATH=f"{VENV_BIN}:{cluster.bin_dir}:{env.get('PATH', '')}",
        DIFY_FAULT_KILL_AT=str(kill_at),
        DIFY_FAULT_KILL_AFTER=str(after),
        DIFY_FAULT_RECORD=str(record or ""),
    )
    try:
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), str(ROOT / playbook), "-i", str(ROOT / "inventories/local/hosts.yml"),
             "-e", f"@{handle.name}"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, start_new_session=True, check=False,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    return proc.returncode


# --------------------------------------------------------------------------- what is checked


def secret(cluster: Cluster, namespace: str, name: str = "dify-credentials") -> dict[str, str]:
    obj = cluster.get("secret", name, namespace)
    return {} if obj is None else {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


KEPT = ("SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD")


def converged(cluster: Cluster, namespace: str, release: str) -> list[str]:
    """Every workload ready, none at 0 replicas, the api at the release; the lock released."""
    problems = []
    for kind in ("deployments", "statefulsets"):
        for obj in cluster.get(kind, namespace=namespace)["items"]:
            name, want = obj["metadata"]["name"], obj["spec"].get("replicas", 1)
            if want == 0:
                problems.append(f"{name} left at 0 replicas")
            elif (obj.get("status") or {}).get("readyReplicas", 0) != want:
                problems.append(f"{name} not ready")
    api = cluster.get("deployment", "dify-api", namespace)
    if api is None:
        problems.append("no dify-api")
    elif api["spec"]["template"]["spec"]["containers"][0]["image"] != f"langgenius/dify-api:{release}":
        problems.append(f"dify-api runs {api['spec']['template']['spec']['containers'][0]['image']}")
    lease = cluster.get("lease", "dify-lock", namespace)
    if lease and (lease.get("spec") or {}).get("holderIdentity"):
        problems.append(f"the lock is still held by {lease['spec']['holderIdentity']}")
    return problems


def consistent_credentials(cluster: Cluster, namespace: str, before: dict[str, str]) -> list[str]:
    now = secret(cluster, namespace)
    problems = [f"{key} changed" for key in KEPT if before.get(key) and now.get(key) != before[key]]
    if now.get("CELERY_BROKER_URL") and now["REDIS_PASSWORD"] not in now["CELERY_BROKER_URL"]:
        problems.append("the Celery broker URL holds another Redis password")
    if now.get("PLUGIN_DIFY_INNER_API_KEY") != now.get("INNER_API_KEY_FOR_PLUGIN"):
        problems.append("the plugin daemon's inner API key differs from the api's")
    return problems


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    playbook: str
    extra: Callable[[str], dict[str, Any]]
    release: str
    setup: Callable[[Any, Cluster, str], None] = lambda ansible, cluster, ns: None
    # Extra invariants: (cluster, namespace, before) -> problems.
    check: Callable[[Cluster, str, dict[str, Any]], list[str]] = lambda cluster, ns, before: []
    # Try every n-th boundary (1: every one).
    every: int = 1
    # Interruptions a few seconds into these tasks (by name) too.
    during: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default=KEPT)


def site(ns: str, **more: Any) -> dict[str, Any]:
    return {"dify_namespace": ns, **more}


def install(ansible: Any, cluster: Cluster, ns: str, version: str = "1.17.1", **more: Any) -> None:
    run = ansible("site.yml", site(ns, dify_image_tag=version, **more))
    assert run.rc == 0, run.stdout[-3000:]


def migrated_once_per_image(cluster: Cluster, ns: str, before: dict[str, Any]) -> list[str]:
    record = (cluster.get("configmap", "dify-db-migration", ns) or {}).get("data") or {}
    return [] if record.get("image") else ["no migration record"]


def restored(cluster: Cluster, ns: str, before: dict[str, Any]) -> list[str]:
    problems = []
    if cluster.get("configmap", "dify-operation", ns) is not None:
        problems.append("the restore's operation record is left")
    record = (cluster.get("configmap", "dify-db-migration", ns) or {}).get("data") or {}
    if record.get("image") != "langgenius/dify-api:1.11.4":
        problems.append(f"the migration record says {record.get('image')}")
    return problems


def uninstalled(cluster: Cluster, ns: str, before: dict[str, Any]) -> list[str]:
    problems = [f"{kind} left" for kind in ("deployments", "statefulsets") if cluster.get(kind, namespace=ns)["items"]]
    claims = {p["metadata"]["uid"] for p in cluster.get("pvc", namespace=ns)["items"]}
    if claims != before["claims"]:
        problems.append("a volume was deleted")
    if cluster.get("configmap", "dify-db-migration", ns) is None:
        problems.append("the migration record was deleted")
    return problems


def copied_once(cluster: Cluster, ns: str, before: dict[str, Any]) -> list[str]:
    record = (cluster.get("configmap", "dify-adoption", ns) or {}).get("data") or {}
    return [] if record.get("state") == "copied" else [f"the adoption record says {record.get('state')}"]


def with_backup(ansible: Any, cluster: Cluster, ns: str) -> None:
    install(ansible, cluster, ns, "1.11.4")
    install(ansible, cluster, ns, "1.11.5")


SCENARIOS = {
    "install": Scenario(
        "install", "site.yml", site, "1.17.1", check=migrated_once_per_image,
        during=("Migrate the database schema", "Apply the data services and wait until they are ready"),
    ),
    "upgrade-weaviate": Scenario(
        "upgrade-weaviate", "site.yml", lambda ns: site(ns, dify_image_tag="1.17.1"), "1.17.1",
        setup=lambda ansible, cluster, ns: install(ansible, cluster, ns, "1.16.1"), check=migrated_once_per_image,
        during=("Copy Weaviate's volume to dify-backups",),
    ),
    "rotation": Scenario(
        "rotation", "site.yml",
        lambda ns: site(ns, dify_db_password="Rotated-Passw0rd-fault", dify_rotate_db_password=True), "1.17.1",
        setup=install, kept=("SECRET_KEY", "REDIS_PASSWORD"),
        during=("Change the password in the database (with the old one, unless the new one works already)",),
        check=lambda cluster, ns, before: [] if secret(cluster, ns)["DB_PASSWORD"] == "Rotated-Passw0rd-fault"
        else ["the rotation did not finish"],
    ),
    "restore": Scenario(
        "restore", "playbooks/restore.yml",
        lambda ns: {"dify_namespace": ns, "dify_restore_confirm": ns, "dify_restore_backup": "@backup"}, "1.11.4",
        setup=with_backup, check=restored, during=("Restore the databases",),
    ),
    "uninstall": Scenario("uninstall", "playbooks/uninstall.yml", lambda ns: {"dify_namespace": ns}, "",
                          setup=install, check=uninstalled),
    "adopt": Scenario(
        "adopt", "playbooks/adopt.yml", lambda ns: {"dify_namespace": ns, "dify_adopt_namespace": ns + "-src"},
        "1.17.1", setup=lambda ansible, cluster, ns: install_adoption_source(cluster, ns + "-src", "community"),
        check=copied_once, kept=(), during=("Dump the source's databases and restore them here",),
    ),
}  # fmt: skip


# What changes the cluster (or the run's lock): a boundary before any other task (a report, a fact,
# an include) is the same as the boundary before the next one.
CHANGING = ("dify_ce.kubernetes.dify_apply", "dify_ce.kubernetes.dify_job", "dify_ce.kubernetes.dify_migrate",
            "dify_ce.kubernetes.dify_record", "dify_ce.kubernetes.dify_lock", "kubernetes.core.k8s",
            "kubernetes.core.k8s_scale")  # fmt: skip


def boundaries(cluster: Cluster, ansible: Any, scenario: Scenario, tmp: Path) -> list[tuple[int, str]]:
    """The task boundaries of an uninterrupted run of the scenario (in a namespace of its own):
    before every task that changed something (the last: the release of the lock)."""
    ns = fresh_namespace(cluster, f"{scenario.name}-probe")
    try:
        scenario.setup(ansible, cluster, ns)
        record = tmp / f"{scenario.name}.tasks"
        rc = interrupted_run(cluster, scenario.playbook, resolve(cluster, ns, scenario.extra(ns)), record=record)
        assert rc == 0, f"{scenario.name}: the uninterrupted run failed"
        tasks = [json.loads(line) for line in record.read_text().splitlines()]
        changing = {action.rsplit(".", maxsplit=1)[-1] for action in CHANGING}
        return [(task["n"], task["name"]) for task in tasks
                if task["ran"] and task["action"].rsplit(".", maxsplit=1)[-1] in changing]  # fmt: skip
    finally:
        drop_namespace(cluster, ns)


def resolve(cluster: Cluster, ns: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Values known only once the starting state exists (the backup a restore names)."""
    if extra.get("dify_restore_backup") == "@backup":
        names = sorted((cluster.get("configmap", "dify-backups", ns) or {}).get("data") or {})
        extra = dict(extra, dify_restore_backup=names[-1])
    return extra


def fresh_namespace(cluster: Cluster, what: str) -> str:
    name = f"f-{what}-{uuid.uuid4().hex[:5]}"[:50]
    cluster.kubectl("create", "namespace", name)
    for other in (name + "-src",):
        cluster.kubectl("create", "namespace", other, check=False)
    return name


def drop_namespace(cluster: Cluster, ns: str) -> None:
    if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
        for name in (ns, ns + "-src"):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


SAMPLE = {"every": int(os.environ.get("DIFY_CE_FAULTS_EVERY") or 0)}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_interruption_converges_on_the_next_run(cluster: Cluster, ansible, tmp_path: Path, name: str):
    scenario = SCENARIOS[name]
    tasks = boundaries(cluster, ansible, scenario, tmp_path)
    every = SAMPLE["every"] or scenario.every
    points = [(n, task, 0.0) for n, task in tasks[::every]]
    points += [(n, task, 3.0) for n, task in tasks if task.split(" : ")[-1] in scenario.during]
    failures, outcomes = [], []
    for n, task, after in points:
        ns = fresh_namespace(cluster, name)
        try:
            scenario.setup(ansible, cluster, ns)
            before = {"credentials": secret(cluster, ns),
                      "claims": {p["metadata"]["uid"] for p in cluster.get("pvc", namespace=ns)["items"]}}  # fmt: skip
            extra = resolve(cluster, ns, scenario.extra(ns))
            interrupted_run(cluster, scenario.playbook, extra, kill_at=n, after=after)
            again = run_playbook(cluster, scenario.playbook, extra, json_output=False)
            problems = [] if again.rc == 0 else [f"the next run failed: {again.stdout[-1500:]}"]
            if again.rc == 0:
                if scenario.release:
                    problems += converged(cluster, ns, scenario.release)
                kept = {k: v for k, v in before["credentials"].items() if k in scenario.kept}
                problems += consistent_credentials(cluster, ns, kept) if scenario.release else []
                problems += scenario.check(cluster, ns, before)
            where = f"{f'{after:.0f}s into' if after else 'before'} task {n} ({task})"
            outcomes.append({"boundary": n, "task": task, "after": after, "converged": not problems})
            if problems:
                failures.append(f"{where}: {'; '.join(problems)}")
        finally:
            drop_namespace(cluster, ns)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(outcomes, indent=1))
    print(f"\n[faults] {name}: {len(points)} interruptions, {len(points) - len(failures)} converged", file=sys.stderr)
    assert not failures, f"{name}: " + "\n".join(failures)


# SIGKILL is what the callback sends; make sure the platform has it (not on Windows).
assert hasattr(signal, "SIGKILL")
