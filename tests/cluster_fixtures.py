"""The local control plane (or a cluster you give) for tests: fixtures and helpers shared by the
integration tests and the programs tier (tests/conftest.py makes the fixtures available).

The cluster is started once per test session with tests/cluster/cluster.sh (which
reuses a running one). To run against another cluster instead, point
DIFY_CE_TEST_KUBECONFIG at its kubeconfig: the tests then create and delete their
own namespaces there. (Plain KUBECONFIG is deliberately not used, so that a test run
never lands on whatever cluster a shell happens to point at.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "tests" / "cluster" / "cluster.sh"
PLAYBOOKS = ROOT / "tests" / "integration" / "playbooks"
VENV_BIN = Path(sys.executable).parent
ADOPTION_FIXTURES = ROOT / "tests" / "integration" / "fixtures" / "adoption"


@dataclass
class Cluster:
    kubeconfig: str
    bin_dir: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def apply(self, manifest: dict | list | str, namespace: str | None = None, check: bool = True):
        text = (
            manifest
            if isinstance(manifest, str)
            else yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        )
        args = ["apply", "--server-side", "--field-manager=dify-ce-tests", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        return self.kubectl(*args, input=text, check=check)

    def job_finished(self, job: dict) -> str:
        """When the Job's pod finished: what the play waits for (the Job controller records the
        Job's completionTime up to a second later, batching pod updates)."""
        uid = job["metadata"]["uid"]
        pods = self.get("pods", namespace=job["metadata"]["namespace"])["items"]
        ends = [
            cs["state"]["terminated"]["finishedAt"]
            for pod in pods
            if pod["metadata"].get("labels", {}).get("batch.kubernetes.io/controller-uid") == uid
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
            if (cs.get("state") or {}).get("terminated", {}).get("exitCode") == 0
        ]
        assert ends, f"no succeeded pod of Job {job['metadata']['name']}"
        return max(ends)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None, **selectors: str) -> Any:
        args = ["get", kind, "-o", "json"]
        if name:
            args.insert(2, name)
        if namespace:
            args += ["-n", namespace]
        if selectors.get("label"):
            args += ["-l", selectors["label"]]
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    given = os.environ.get("DIFY_CE_TEST_KUBECONFIG")
    bin_dir = Path(
        subprocess.run([str(CLUSTER_SH), "bin-dir"], capture_output=True, text=True, check=True).stdout.strip()
    )
    if given:
        return Cluster(given, bin_dir)
    out = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.fail(f"could not start the local cluster:\n{out.stderr[-4000:]}")
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("KUBECONFIG="), out.stdout
    return Cluster(last.split("=", 1)[1], bin_dir)


_NS_SAFE = re.compile(r"[^a-z0-9-]")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest):
    base = _NS_SAFE.sub("-", request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    # The serviceaccount controller creates "default" shortly after; pods need it.
    for _attempt in range(100):
        if cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0:
            break
        time.sleep(0.1)
    yield name
    if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


LOGS_FILE_ANNOTATION = "dify-ce.test/logs-file"


@pytest.fixture
def pod_logs(tmp_path_factory: pytest.TempPathFactory):
    """Other output than the simulated one (tests/cluster/simulated-output: what each Job of the
    collection prints when it succeeds, in every namespace). ``pod_logs(text)`` writes the text
    and returns the pod annotation that makes `kubectl logs` of a Job's pod return it: give it to
    the pods through the role's ``dify_*_pod_annotations`` or a module's ``pod_annotations``."""

    def serve(text: str) -> dict[str, str]:
        # kwok serves logs from files in CRI format: "<RFC 3339 time> <stream> F <line>".
        path = tmp_path_factory.mktemp("logs") / "container.log"
        stamp = "2026-01-01T00:00:00.000000000Z"
        path.write_text("".join(f"{stamp} stdout F {line}\n" for line in text.splitlines()))
        return {LOGS_FILE_ANNOTATION: str(path)}

    return serve


def install_adoption_source(cluster: Cluster, namespace: str, name: str) -> dict:
    """A running Dify to adopt: fixture `name` of tests/integration/fixtures/adoption, in `namespace`."""
    doc = yaml.safe_load((ADOPTION_FIXTURES / f"{name}.yaml").read_text())
    # Claims first: a StatefulSet controller racing the apply would create its claims itself.
    doc["items"].sort(key=lambda item: item["kind"] != "PersistentVolumeClaim")
    for item in doc["items"]:
        item["metadata"]["namespace"] = namespace
        for annotation in ("meta.helm.sh/release-namespace",):
            if annotation in (item["metadata"].get("annotations") or {}):
                item["metadata"]["annotations"][annotation] = namespace
    text = yaml.safe_dump(doc).replace(".dify.svc", f".{namespace}.svc")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)
    cluster.kubectl("wait", "--for=condition=Available", "deployment", "--all", "-n", namespace, "--timeout=120s")
    deadline = time.monotonic() + 120
    while any(o["status"].get("readyReplicas") != o["spec"]["replicas"]
              for o in cluster.get("statefulsets", namespace=namespace)["items"]):  # fmt: skip
        assert time.monotonic() < deadline, "the source's StatefulSets did not become ready"
        time.sleep(1)
    return doc


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: dict[str, list[dict[str, Any]]]  # task name -> results (json callback)

    def result(self, task: str) -> dict[str, Any]:
        """The last result of a task, by name (a role's tasks also match without "role : ")."""
        found = self.results.get(task) or next(
            (rs for name, rs in self.results.items() if name.endswith(" : " + task)), None
        )
        assert found, f"task {task!r} did not run; tasks: {list(self.results)}\n{self.stdout[-3000:]}"
        return found[-1]

    def ran(self, task: str) -> bool:
        return any(name == task or name.endswith(" : " + task) for name in self.results)

    @property
    def failed_results(self) -> list[dict[str, Any]]:
        """Failed task results, and the failed items of failed loops."""
        failed = []
        for results in self.results.values():
            for r in results:
                if r.get("failed") and not r.get("ignore_errors"):
                    failed.append(r)
                    failed.extend(item for item in r.get("results") or [] if item.get("failed"))
        return failed

    @property
    def changed(self) -> int:
        return self.stats.get("changed", 0)

    stats: dict[str, int] | None = None


def run_playbook(
    cluster: Cluster,
    playbook: str | Path,
    extra_vars: dict[str, Any] | None = None,
    *,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    env: dict[str, str] | None = None,
    inventory: str | Path | None = None,
    json_output: bool = True,
    timeout: float = 900,
) -> PlaybookRun:
    """ansible-playbook as a user runs it; results parsed from the json callback."""
    path = Path(playbook)
    if not path.is_absolute():
        path = (PLAYBOOKS / path) if (PLAYBOOKS / path).exists() else ROOT / path
    cmd = [str(VENV_BIN / "ansible-playbook"), str(path), "-i", str(inventory or ROOT / "inventories/local/hosts.yml")]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
    cmd += ["-e", f"@{handle.name}"]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    run_env = dict(os.environ)
    run_env.update(
        {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "K8S_AUTH_KUBECONFIG": cluster.kubeconfig,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "PATH": f"{VENV_BIN}:{cluster.bin_dir}:{run_env.get('PATH', '')}",
        }
    )
    if json_output:
        run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    if env:
        run_env.update(env)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=ROOT, timeout=timeout, check=False)
    finally:
        os.unlink(handle.name)
    results: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, int] = {}
    if json_output:
        try:
            doc = json.loads(proc.stdout[proc.stdout.index("{") :])
        except ValueError as exc:
            raise AssertionError(
                f"no JSON from ansible-playbook:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from exc
        for play in doc.get("plays", []):
            for task in play.get("tasks", []):
                for host_result in task.get("hosts", {}).values():
                    results.setdefault(task["task"]["name"], []).append(host_result)
        stats = next(iter(doc.get("stats", {}).values()), {})
    run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)
    run.stats = stats
    return run


@pytest.fixture
def ansible(cluster: Cluster):
    def runner(playbook: str | Path, extra_vars: dict[str, Any] | None = None, **kwargs: Any) -> PlaybookRun:
        return run_playbook(cluster, playbook, extra_vars, **kwargs)

    return runner
