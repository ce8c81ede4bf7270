"""The programs tier: squid, nginx, PostgreSQL 15 and Redis run as real processes with exactly
what the role renders (docs/testing.md, "What is real in which tier").

The tests read only Kubernetes objects: the manifests of `tasks_from: manifests` (every YAML
document of the directory, found by kind and name) and the Jobs the role creates at run time,
read from the local cluster after the real playbooks ran. runner.py runs their containers.
Needs root (namespaces, other users) and the Debian packages of setup-packages.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
from cluster_fixtures import Cluster, run_playbook
from runner import Container, Objects, PodNetwork, Volumes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if f"{os.sep}programs{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.programs)
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session", autouse=True)
def _programs_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("the programs tier needs root (namespaces, setpriv to other users)")
    missing = [
        p for p in ("squid", "nginx", "redis-server", "setpriv", "unshare", "nsenter", "ip") if not shutil.which(p)
    ]
    missing += [] if Path("/usr/lib/postgresql/15/bin/postgres").exists() else ["postgresql-15"]
    if missing:
        pytest.fail(f"missing {missing}: run `make setup` (tests/programs/setup-packages.sh)")


def _new_namespace(cluster: Cluster, base: str) -> str:
    name = f"t-{re.sub(r'[^a-z0-9-]', '-', base)[:40]}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    for _attempt in range(100):  # pods need the "default" ServiceAccount
        if cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0:
            break
        time.sleep(0.1)
    return name


@pytest.fixture(scope="session")
def install(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    """One installation (site.yml) for the tier, and its manifests (tasks_from: manifests)."""
    namespace = _new_namespace(cluster, "programs")
    # The release of the original deploy script: the tier then upgrades it to 1.11.5 (backups).
    run = run_playbook(cluster, "site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"})
    assert run.rc == 0, run.stdout[-3000:]
    out = tmp_path_factory.mktemp("manifests")
    rendered = run_playbook(
        cluster,
        "playbooks/manifests.yml",
        {"dify_namespace": namespace, "dify_manifests_dir": str(out), "dify_image_tag": "1.11.4"},
    )
    assert rendered.rc == 0, rendered.stdout[-3000:]
    yield Installation(cluster, namespace, Objects.load(out))
    if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


class Installation:
    def __init__(self, cluster: Cluster, namespace: str, objects: Objects):
        self.cluster = cluster
        self.namespace = namespace
        self.objects = objects

    def playbook(self, playbook: str, **extra) -> None:
        run = run_playbook(self.cluster, playbook, {"dify_namespace": self.namespace, **extra})
        assert run.rc == 0, run.stdout[-3000:]

    def job(self, name: str) -> dict:
        """A Job the role created, as the API has it."""
        job = self.cluster.get("job", name, self.namespace)
        assert job, f"no Job {name} in {self.namespace}"
        return job


@pytest.fixture(scope="session")
def objects(install: Installation) -> Objects:
    return install.objects


@pytest.fixture(scope="session")
def manifests(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    """The objects site.yml would apply for a Dify release (tasks_from: manifests, the role's
    defaults otherwise), rendered once per release in a namespace of their own: what a test of
    another release than the installation's runs."""
    rendered: dict[str, Objects] = {}
    made: list[str] = []

    def of(version: str) -> Objects:
        if version not in rendered:
            namespace = _new_namespace(cluster, f"manifests-{version.replace('.', '-')}")
            made.append(namespace)
            out = tmp_path_factory.mktemp(f"manifests-{version}")
            run = run_playbook(
                cluster,
                "playbooks/manifests.yml",
                {"dify_namespace": namespace, "dify_manifests_dir": str(out), "dify_image_tag": version},
            )
            assert run.rc == 0, run.stdout[-3000:]
            rendered[version] = Objects.load(out)
        return rendered[version]

    yield of
    if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
        for namespace in made:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def network(tmp_path: Path):
    net = PodNetwork(tmp_path / "network")
    yield net
    net.close()


@pytest.fixture
def volumes(tmp_path: Path, objects: Objects) -> Volumes:
    return Volumes(tmp_path / "volumes", objects)


@pytest.fixture
def containers(network: PodNetwork):
    """Containers started through this list are stopped after the test (before its network)."""
    started: list[Container] = []
    yield started
    for container in reversed(started):
        container.stop(grace=2)
