"""Two `make cluster-binaries` at once (two clones, CI beside a developer) both succeed, and the
second reuses what the first built. tests/cluster/build.sh runs for real; a stand-in `go` on PATH
"builds" slowly, so the runs overlap without a cold Go build."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BUILD_SH = ROOT / "tests" / "cluster" / "build.sh"

# `go env GOVERSION` and `go build ... -o OUT PKG`: writes OUT in two steps, slowly, and logs it.
FAKE_GO = """#!/bin/sh
case "$1" in
  env) echo go0.0-fake ;;
  build)
    while [ $# -gt 0 ]; do
      [ "$1" = -o ] && out=$2
      shift
    done
    echo "$out" >>"$FAKE_GO_LOG"
    printf '#!/bin/sh\\n' >"$out"
    sleep 0.2
    echo 'echo built' >>"$out"
    chmod +x "$out"
    ;;
  *) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
"""
BINARIES = {
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd",
    "kwok", "kwokctl", "k8snetpolicy", "helm",
}  # fmt: skip


def test_two_builds_at_once_both_succeed_and_build_each_binary_once(tmp_path):
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "go").write_text(FAKE_GO)
    (fake_bin / "go").chmod(0o755)
    log = tmp_path / "go.log"
    env = dict(
        os.environ,
        PATH=f"{fake_bin}:{os.environ['PATH']}",
        DIFY_CE_CACHE_DIR=str(tmp_path / "cache"),
        FAKE_GO_LOG=str(log),
    )
    runs = [
        subprocess.Popen([str(BUILD_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _run in range(2)
    ]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    for rc, _out, err in results:
        assert rc == 0, err
    bin_dirs = {out.strip().splitlines()[-1] for _rc, out, _err in results}
    assert len(bin_dirs) == 1, bin_dirs
    bin_dir = Path(bin_dirs.pop())
    assert {p.name for p in bin_dir.iterdir()} == BINARIES
    for binary in bin_dir.iterdir():
        assert binary.read_text() == "#!/bin/sh\necho built\n", f"{binary.name} is half-written"
    built = [re.sub(r"^\.(.*)\.tmp\.\d+$", r"\1", Path(line).name) for line in log.read_text().splitlines()]
    assert sorted(built) == sorted(BINARIES), "each binary is built exactly once"
    assert not list((tmp_path / "cache").rglob(".*.tmp*")), "no temporary file is left"
