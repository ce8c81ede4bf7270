#!/usr/bin/env bash
# ansible-test sanity, without Docker and without internet.
#
# ansible-test must run from <root>/ansible_collections/<namespace>/<name>, and only sees
# collections inside that same <root>: the tracked files are copied there and the
# dependencies (kubernetes.core, ansible.utils) linked from the venv's ansible package.
# Each sanity test gets its own venv, bootstrapped by a get-pip script ansible-test
# would download; a small stand-in from ensurepip is put into its cache instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
# Outside the checkout: inside it, ansible-test would take the checkout's git index
# (where the copy is ignored) as the list of files to test.
build=$(mktemp -d "${TMPDIR:-/tmp}/dify-ce-sanity.XXXXXX")
trap 'rm -rf "$build"' EXIT
collection="$build/ansible_collections/dify_ce/kubernetes"
site=$("$python" -c 'import ansible_collections.kubernetes.core as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(list(m.__path__)[0]))))')

mkdir -p "$collection" "$build/ansible_collections/kubernetes" "$build/ansible_collections/ansible"
(cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' | xargs -0 cp -P --parents -t "$collection")
ln -s "$site/ansible_collections/kubernetes/core" "$build/ansible_collections/kubernetes/core"
ln -s "$site/ansible_collections/ansible/utils" "$build/ansible_collections/ansible/utils"

pip_version=$("$python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.config import PythonConfig  # noqa: F401 (type only)


class Python:  # get_venv_packages only reads .version
    version = "3.11"


print(get_venv_packages(Python())["pip"])
PY
)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cat >"$cache/get_pip_${pip_version//./_}.py" <<'PY'
# Stand-in for the get-pip.py ansible-test downloads: pip from ensurepip, then the
# requested pip from the package index, with the system CA bundle (ansible-test sets
# PIP_CONFIG_FILE=/dev/null and strips the environment).
import ssl
import subprocess
import sys

subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cafile = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
extra = ["--cert", cafile] if cafile else []
subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *extra, *args], check=True)
PY

cd "$collection"
PATH="$(dirname "$python"):$PATH" "$(dirname "$python")/ansible-test" sanity --local --python "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"
