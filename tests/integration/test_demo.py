"""The README's first command as a newcomer runs it: `make demo` in a fresh namespace, again (nothing
changes), then the next step it prints, run exactly as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

from cluster_fixtures import ROOT, Cluster


def make_demo(namespace: str) -> subprocess.CompletedProcess:
    # DIFY_NAMESPACE as the README says; nothing else of the test run's environment is needed.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_", "PYTEST_"))}
    env["DIFY_NAMESPACE"] = namespace
    return subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


def recap_changed(output: str) -> int:
    return int(re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)", output, re.MULTILINE).group(1))


def test_make_demo_twice_then_the_next_step_it_prints(cluster: Cluster, namespace: str):
    first = make_demo(namespace)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    # The migration's Alembic lines (simulated by the local cluster) and the record.
    assert "Running upgrade  -> 64b051264f32, init" in first.stdout
    assert "image: langgenius/dify-api:" in first.stdout
    assert "'First start: open the URL and create the admin account.'" in first.stdout
    assert "- ''" not in first.stdout, "an empty line in the closing message"

    second = make_demo(namespace)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap_changed(second.stdout) == 0, second.stdout[-4000:]

    lines = second.stdout.splitlines()
    step = lines[next(i for i, line in enumerate(lines) if line.startswith("Run it again")) + 1].strip()
    assert f"dify_namespace={namespace}" in step
    assignment, *command = shlex.split(step)
    name, value = assignment.split("=", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_"))}
    env[name] = value
    status = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert status.returncode == 0, status.stdout[-4000:]
    assert f"Dify in {namespace} is healthy." in status.stdout
