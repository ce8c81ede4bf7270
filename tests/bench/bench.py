"""`make bench`: speed and API cost of site.yml against what users would run instead.

Runs on its own local control plane (cluster name dify-ce-bench, with an audit log, so every
request is attributed to the client that made it) and measures, each several times, alternating
the tools run for run:

1. against helm: `helm upgrade --install --wait` of a chart built here from exactly the objects
   site.yml renders (`playbooks/manifests.yml`; without the Namespace, which helm creates with
   --create-namespace, and with their namespace left to helm): a fresh install of each into new
   namespaces, then a no-op of each; medians, spread, ratios, CPU seconds and peak memory;
2. no-op re-run against `kubectl apply --server-side` of the same objects;
3. API cost of a no-op re-run: requests per managed object, from the audit log (exact) and from
   apiserver_request_total (before/after, minus the background rate measured just before);
4. migration completion latency: dify_migrate against `kubectl wait --for=condition=complete` on
   the same Job;
5. the prepare step (validate, read, decide, build the model): its task's duration in the no-op
   runs, and building the model alone in Python (no cluster).

Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CLUSTER_SH = ROOT / "tests" / "cluster" / "cluster.sh"
CLUSTER_ENV = dict(os.environ, DIFY_CE_CLUSTER_NAME="dify-ce-bench", DIFY_CE_CLUSTER_AUDIT="1")
PYTHON_CLIENT = "OpenAPI-Generator/"  # user agent of the kubernetes Python client (kubernetes.core)
LOCAL_VARS = {"dify_storage_class": "kwok-volume", "dify_files_storage_class": "kwok-files"}


def sh(*args: str, env: dict | None = None, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, env=env, check=check, **kwargs)


class Bench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        up = sh(str(CLUSTER_SH), "up", env=CLUSTER_ENV)
        self.kubeconfig = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
        self.bin = Path(sh(str(CLUSTER_SH), "bin-dir", env=CLUSTER_ENV).stdout.strip())
        self.audit_log = Path(sh(str(CLUSTER_SH), "audit-log", env=CLUSTER_ENV).stdout.strip())
        self.env = dict(
            os.environ,
            K8S_AUTH_KUBECONFIG=self.kubeconfig,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            PATH=f"{VENV_BIN}:{self.bin}:{os.environ.get('PATH', '')}",
        )

    # -- helpers -----------------------------------------------------------------
    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return sh(str(self.bin / "kubectl"), "--kubeconfig", self.kubeconfig, *args, **kwargs)

    def timed(self, cmd: list[str], sample_memory: bool = False) -> tuple[float, float, int, str, str, int]:
        """Wall seconds, CPU seconds of the whole process tree, peak RSS, stdout, stderr, rc."""
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=ROOT)
        peak = [0]
        if sample_memory:
            threading.Thread(target=self._sample_rss, args=(proc.pid, peak, proc), daemon=True).start()
        out, err = proc.communicate()
        elapsed = time.monotonic() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        return elapsed, cpu, peak[0], out, err, proc.returncode

    def playbook(self, playbook: str, extra: dict, sample_memory: bool = False) -> tuple[float, dict, int, float]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({**LOCAL_VARS, **extra}, handle)
        inventory = str(ROOT / "inventories/local/hosts.yml")
        cmd = [str(VENV_BIN / "ansible-playbook"), str(ROOT / playbook), "-i", inventory, "-e", f"@{handle.name}"]
        elapsed, cpu, peak, out, err, rc = self.timed(cmd, sample_memory)
        os.unlink(handle.name)
        if rc != 0:
            raise SystemExit(f"{playbook} failed:\n{out[-3000:]}\n{err[-2000:]}")
        return elapsed, json.loads(out[out.index("{") :]), peak, cpu

    # -- helm --------------------------------------------------------------------------
    def chart(self, files: list[Path], where: Path) -> Path:
        """A chart of exactly the objects site.yml applies (without the Namespace: helm makes it)."""
        chart = where / "dify-bench"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: dify-bench\nversion: 0.1.0\n")
        count = 0
        for f in files:
            for doc in yaml.safe_load_all(f.read_text()):
                if not doc or doc["kind"] == "Namespace":
                    continue
                doc["metadata"].pop("namespace", None)
                text = yaml.safe_dump(doc, sort_keys=False)
                if "{{" in text:
                    raise SystemExit(f"{doc['kind']} {doc['metadata']['name']} holds '{{{{': not a literal chart")
                count += 1
                (chart / "templates" / f"{count:03d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml").write_text(
                    text
                )
        return chart

    def helm(self, chart: Path, namespace: str, sample_memory: bool = False) -> tuple[float, float, int]:
        cmd = [str(self.bin / "helm"), "--kubeconfig", self.kubeconfig, "upgrade", "--install", "dify-bench",
               str(chart), "-n", namespace, "--create-namespace", "--wait", "--timeout", "10m"]  # fmt: skip
        elapsed, cpu, peak, out, err, rc = self.timed(cmd, sample_memory)
        if rc != 0:
            raise SystemExit(f"helm failed:\n{out[-2000:]}\n{err[-2000:]}")
        return elapsed, cpu, peak

    @staticmethod
    def _sample_rss(pid: int, peak: list, proc: subprocess.Popen) -> None:
        """Sum the RSS of the process and all its descendants every 20 ms."""
        while proc.poll() is None:
            total = 0
            children: dict[int, list[int]] = collections.defaultdict(list)
            rss: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    children[int(fields[1])].append(int(entry))
                    rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, IndexError, ValueError):
                    continue
            stack = [pid]
            while stack:
                current = stack.pop()
                total += rss.get(current, 0)
                stack.extend(children.get(current, []))
            peak[0] = max(peak[0], total)
            time.sleep(0.02)

    def audit_requests(self, start_offset: int) -> collections.Counter:
        """Requests of the Python Kubernetes client since start_offset in the audit log."""
        counts: collections.Counter = collections.Counter()
        with open(self.audit_log) as f:
            f.seek(start_offset)
            for line in f:
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete" or not event.get("userAgent", "").startswith(PYTHON_CLIENT):
                    continue
                ref = event.get("objectRef") or {}
                kind = ref.get("resource") or event.get("requestURI", "").split("?")[0]
                counts[f"{event['verb']} {kind}"] += 1
        return counts

    def metric_total(self) -> float:
        text = self.kubectl("get", "--raw", "/metrics").stdout
        total = 0.0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # -- measurements --------------------------------------------------------------
    def fresh_install(self, namespace: str) -> tuple[float, float, int]:
        elapsed, _doc, peak, cpu = self.playbook("site.yml", {"dify_namespace": namespace}, sample_memory=True)
        return elapsed, cpu, peak

    def managed_objects(self, namespace: str, out: Path) -> list[Path]:
        self.playbook("playbooks/manifests.yml", {"dify_namespace": namespace, "dify_manifests_dir": str(out)})
        return sorted(out.glob("*.yaml"))

    def kubectl_apply(self, files: list[Path]) -> float:
        started = time.monotonic()
        for f in files:  # in the order the play applies them
            self.kubectl(
                "apply", "--server-side", "--force-conflicts", "--field-manager=dify_ce.kubernetes", "-f", str(f)
            )
        return time.monotonic() - started

    def migration_latency(self, namespace: str, delay: int = 4) -> float:
        """Seconds by which dify_migrate returns after `kubectl wait` on the same Job (negative: earlier)."""
        extra = {"migrate_args": {"namespace": namespace, "image": "langgenius/dify-api:1.11.4", "force": True,
                                  "pod_annotations": {"dify-ce.test/delay-seconds": str(delay)}}}  # fmt: skip
        result: dict = {}

        def play() -> None:
            doc = self.playbook("tests/integration/playbooks/run_dify_migrate.yml", extra)[1]
            task = doc["plays"][0]["tasks"][0]
            result["module_end"] = task["task"]["duration"]["end"]

        thread = threading.Thread(target=play)
        thread.start()
        # `kubectl wait` on the new Job (the old one was replaced: wait for a Job created now).
        created_after = time.time()
        while True:
            job = self.kubectl("get", "job", "dify-db-migration", "-n", namespace, "-o", "json", check=False)
            if job.returncode == 0:
                meta = json.loads(job.stdout)["metadata"]
                stamp = time.mktime(time.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
                if stamp >= int(created_after) - 1:
                    break
            time.sleep(0.05)
        self.kubectl("wait", "--for=condition=complete", "job/dify-db-migration", "-n", namespace, "--timeout=120s")
        kubectl_end = time.time()
        thread.join()
        module_end = datetime.fromisoformat(result["module_end"].replace("Z", "+00:00")).timestamp()
        return module_end - kubectl_end


def task_seconds(doc: dict, name: str) -> float:
    """Duration of a task (json callback) by the end of its name."""
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(name):
                duration = task["task"]["duration"]
                start = datetime.fromisoformat(duration["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(duration["end"].replace("Z", "+00:00"))
                return (end - start).total_seconds()
    raise SystemExit(f"no task {name!r} in the run")


def model_build_seconds(repeat: int = 5) -> list[float]:
    """Building the whole model of the default inventory in Python, no cluster (the prepare step
    without its one read)."""
    sys.path[:0] = [str(ROOT / "collections"), str(ROOT / "tests/unit/plugins/module_utils/model")]
    from cases import ASSETS, reader, releases
    from role_settings import params

    from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import build

    settings, catalog = params(**LOCAL_VARS), releases()
    timer = timeit.Timer(lambda: build.prepare(settings, "main", reader({}), assets=ASSETS, releases=catalog))
    return [t / 10 for t in timer.repeat(repeat=repeat, number=10)]


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "runs": len(values), "values": [round(v, 3) for v in values]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each measurement (default 5)")
    parser.add_argument("--installs", type=int, default=3, help="fresh installs (default 3)")
    args = parser.parse_args()

    bench = Bench(args.runs)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }

    print("objects the play manages ...", file=sys.stderr)
    seed = f"bench-{stamp}-seed"
    bench.fresh_install(seed)  # warms the discovery cache and the images' first pulls of nothing
    files = bench.managed_objects(seed, Path(tempfile.mkdtemp()) / "manifests")
    objects = sum(1 for f in files for doc in f.read_text().split("\n---\n") if "kind:" in doc)
    results["managed_objects"] = objects
    chart = bench.chart(files, Path(tempfile.mkdtemp()))
    results["chart_objects"] = len(list((chart / "templates").glob("*.yaml")))

    print("fresh installs, alternating helm and site.yml ...", file=sys.stderr)
    ours_fresh, helm_fresh = [], []
    for i in range(args.installs):
        helm_fresh.append(bench.helm(chart, f"bench-{stamp}-helm-{i}", sample_memory=True))
        ours_fresh.append(bench.fresh_install(f"bench-{stamp}-{i}"))
    namespace = f"bench-{stamp}-0"
    results["fresh_install_seconds"] = summary([r[0] for r in ours_fresh])
    results["fresh_install_cpu_seconds"] = summary([r[1] for r in ours_fresh])
    results["fresh_install_peak_rss_mib"] = summary([r[2] / 2**20 for r in ours_fresh])
    results["helm_install_seconds"] = summary([r[0] for r in helm_fresh])
    results["helm_install_cpu_seconds"] = summary([r[1] for r in helm_fresh])
    results["helm_install_peak_rss_mib"] = summary([r[2] / 2**20 for r in helm_fresh])

    print("no-op re-runs, alternating helm and site.yml ...", file=sys.stderr)
    noop, noop_cpu, peaks, audit_counts, metric_deltas, prepare = [], [], [], [], [], []
    helm_noop = []
    for _run in range(args.runs):
        helm_noop.append(bench.helm(chart, f"bench-{stamp}-helm-0", sample_memory=True))
        # Background rate of the cluster itself, to subtract from the metric.
        before = bench.metric_total()
        time.sleep(3)
        background_rate = (bench.metric_total() - before - 1) / 3  # the second scrape counts itself
        offset = bench.audit_log.stat().st_size
        before = bench.metric_total()
        elapsed, doc, peak, cpu = bench.playbook("site.yml", {"dify_namespace": namespace}, sample_memory=True)
        after = bench.metric_total()
        changed = next(iter(doc["stats"].values()))["changed"]
        if changed:
            raise SystemExit(f"the no-op run changed {changed} things")
        noop.append(elapsed)
        noop_cpu.append(cpu)
        peaks.append(peak / 2**20)
        prepare.append(task_seconds(doc, "Prepare the model of the installation"))
        audit_counts.append(bench.audit_requests(offset))
        metric_deltas.append(after - before - 1 - background_rate * elapsed)
    results["noop_site_yml_seconds"] = summary(noop)
    results["noop_cpu_seconds"] = summary(noop_cpu)
    results["noop_peak_rss_mib"] = summary(peaks)
    results["helm_noop_seconds"] = summary([r[0] for r in helm_noop])
    results["helm_noop_cpu_seconds"] = summary([r[1] for r in helm_noop])
    results["helm_noop_peak_rss_mib"] = summary([r[2] / 2**20 for r in helm_noop])
    results["noop_ratio_site_yml_to_helm"] = round(
        results["noop_site_yml_seconds"]["median"] / results["helm_noop_seconds"]["median"], 2
    )
    results["fresh_install_ratio_site_yml_to_helm"] = round(
        results["fresh_install_seconds"]["median"] / results["helm_install_seconds"]["median"], 2
    )
    results["prepare_task_seconds"] = summary(prepare)
    results["model_build_seconds"] = summary(model_build_seconds())

    print("kubectl apply --server-side ...", file=sys.stderr)
    applies = [bench.kubectl_apply(files) for _run in range(args.runs)]
    results["kubectl_apply_seconds"] = summary(applies)
    results["noop_ratio_site_yml_to_kubectl_apply"] = round(
        results["noop_site_yml_seconds"]["median"] / results["kubectl_apply_seconds"]["median"], 2
    )

    totals = [sum(c.values()) for c in audit_counts]
    results["noop_api_requests"] = summary([float(t) for t in totals])
    results["noop_requests_per_object"] = round(statistics.median(totals) / objects, 2)
    results["noop_requests_per_object_metric"] = round(statistics.median(metric_deltas) / objects, 2)
    merged: collections.Counter = collections.Counter()
    for c in audit_counts:
        merged.update(c)
    results["noop_top_requests"] = [
        {"request": k, "per_run": round(v / len(audit_counts), 1)} for k, v in merged.most_common(8)
    ]

    print("migration completion latency ...", file=sys.stderr)
    latency = [bench.migration_latency(namespace) for _run in range(args.runs)]
    results["migration_latency_seconds"] = summary(latency)

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    for name in (
        [seed]
        + [f"bench-{stamp}-{i}" for i in range(args.installs)]
        + [f"bench-{stamp}-helm-{i}" for i in range(args.installs)]
    ):
        bench.kubectl("delete", "namespace", name, "--wait=false", check=False)

    rows = [
        ("no-op site.yml (s)", results["noop_site_yml_seconds"]),
        ("no-op helm upgrade --install --wait, same objects (s)", results["helm_noop_seconds"]),
        ("no-op site.yml CPU (s)", results["noop_cpu_seconds"]),
        ("no-op helm CPU (s)", results["helm_noop_cpu_seconds"]),
        ("kubectl apply --server-side, same objects (s)", results["kubectl_apply_seconds"]),
        ("fresh install to all ready, site.yml (s)", results["fresh_install_seconds"]),
        ("fresh install, helm install --wait (s)", results["helm_install_seconds"]),
        ("fresh install CPU, site.yml (s)", results["fresh_install_cpu_seconds"]),
        ("fresh install CPU, helm (s)", results["helm_install_cpu_seconds"]),
        ("prepare task of a no-op run (s)", results["prepare_task_seconds"]),
        ("building the model alone, Python (s)", results["model_build_seconds"]),
        ("migration: dify_migrate return - kubectl wait return (s)", results["migration_latency_seconds"]),
        ("API requests of a no-op run", results["noop_api_requests"]),
        ("peak RSS of the no-op ansible-playbook tree (MiB)", results["noop_peak_rss_mib"]),
        ("peak RSS of the no-op helm (MiB)", results["helm_noop_peak_rss_mib"]),
    ]
    print(f"\nmachine: {results['machine']['cpus']} CPUs, {results['machine']['platform']}")
    print(f"{'measurement':58} {'median':>9} {'min':>9} {'max':>9}")
    for name, s in rows:
        print(f"{name:58} {s['median']:>9} {s['min']:>9} {s['max']:>9}")
    print(f"\nratios site.yml / helm (medians): no-op {results['noop_ratio_site_yml_to_helm']}, "
          f"fresh install {results['fresh_install_ratio_site_yml_to_helm']}")  # fmt: skip
    print(f"no-op ratio site.yml / kubectl apply: {results['noop_ratio_site_yml_to_kubectl_apply']}")
    print(f"managed objects: {objects}; requests per object: {results['noop_requests_per_object']} (audit log), "
          f"{results['noop_requests_per_object_metric']} (apiserver_request_total minus background)")  # fmt: skip
    print(
        "top requests of a no-op run:",
        ", ".join(f"{r['request']} x{r['per_run']}" for r in results["noop_top_requests"]),
    )
    print(f"\nwritten: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
