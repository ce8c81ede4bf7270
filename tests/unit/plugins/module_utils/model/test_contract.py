"""Conformance with Dify's own deployment files: for every release line, the model renders what
Dify's docker compose gives each service (roles/dify/files/contract/<line>.yml), or the
collection records why not (collection.yml: deviations and extras, each with a reason).

Each test collects every disagreement of one line and one inventory and fails with all of them,
one per line of the message: the line, the service, the variable (or route, port, ...), Dify's
value and its source, and what the model renders. Adding a release line = adding its data file;
this test then names what the model lacks.

Two inventories per line: the role's defaults, and a public URL (network policies on in both)."""

from __future__ import annotations

import base64
import fnmatch
import re
import urllib.parse
from functools import lru_cache
from typing import Any

import pytest
import yaml
from cases import ASSETS, LOCAL, counter, reader, releases
from role_settings import ROLE, params

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import build, catalog, contract

CONTRACT = ROLE / "files" / "contract"
LINES = sorted((p.stem for p in CONTRACT.glob("*.yml") if catalog.version_tuple(p.stem)), key=catalog.version_tuple)
PUBLIC_URL = "https://dify.example.com"
INVENTORIES = {"default": {}, "public-url": {"dify_public_url": PUBLIC_URL}}
CASES = [(line, case) for line in LINES for case in INVENTORIES]
# Rendered values that stand for "not set" and Dify's values that mean "unset" (compose passes an
# empty string where .env.example leaves a key empty; the programs treat both alike).
BOOLEAN = {"true", "false"}


@lru_cache
def data(line: str) -> dict[str, Any]:
    return yaml.safe_load((CONTRACT / f"{line}.yml").read_text())


@lru_cache
def mapping() -> dict[str, Any]:
    return yaml.safe_load((CONTRACT / "collection.yml").read_text())


@lru_cache
def model(line: str, case: str) -> dict[str, Any]:
    inventory = {**LOCAL, "dify_image_tag": data(line)["release"], **INVENTORIES[case]}
    return build.prepare(
        params("main", **inventory),
        "main",
        reader({}),
        assets=ASSETS,
        releases=releases(),
        new_secret=counter(),
        new_agent_key=lambda: "generated-agent-key-" + "A" * 23,
        new_admin_password=lambda: "Dify1-generated-admin-password",
    )


# ---------------------------------------------------------------------------------------- the model
def objects(m: dict[str, Any]) -> list[dict[str, Any]]:
    out = [o for phase in m["objects"].values() for o in phase if isinstance(o, dict)]
    return out + list(m.get("secrets") or [])


def find(m: dict[str, Any], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects(m) if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def workload(m: dict[str, Any], service: str) -> dict[str, Any] | None:
    name = mapping()["services"][service]["workload"]
    return find(m, "Deployment", name) or find(m, "StatefulSet", name)


def container(m: dict[str, Any], service: str) -> dict[str, Any] | None:
    w = workload(m, service)
    if w is None:
        return None
    wanted = mapping()["services"][service]["container"]
    return next((c for c in w["spec"]["template"]["spec"]["containers"] if c["name"] == wanted), None)


def secret_data(m: dict[str, Any], name: str) -> dict[str, str]:
    obj = find(m, "Secret", name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def rendered_env(m: dict[str, Any], c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every variable of a container: name -> (value, where), where "secret <name>", "configmap
    <name>" or "env". env wins over envFrom, a later envFrom over an earlier one (Kubernetes)."""
    out: dict[str, tuple[str, str]] = {}
    for source in c.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            cm = find(m, "ConfigMap", name) or {}
            out.update({k: (str(v), f"configmap {name}") for k, v in (cm.get("data") or {}).items()})
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            out.update({k: (v, f"secret {name}") for k, v in secret_data(m, name).items()})
    for item in c.get("env") or []:
        ref = item.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            out[item["name"]] = (secret_data(m, r["name"]).get(r["key"], ""), f"secret {r['name']}")
        elif "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            cm = find(m, "ConfigMap", r["name"]) or {}
            out[item["name"]] = (str((cm.get("data") or {}).get(r["key"], "")), f"configmap {r['name']}")
        else:
            out[item["name"]] = (str(item.get("value", "")), "env")
    return out


def where(service: str) -> str:
    s = mapping()["services"][service]
    return f"{s['workload']}/{s['container']}"


# ---------------------------------------------------------------------------------------- comparing
def expected(name: str, value: str, case: str, rule: dict[str, Any] | None) -> str:
    """Dify's value as this collection should render it: Service names for compose's, and where a
    deviation says so the public URL for compose's http://localhost or empty URL."""
    value = contract.map_hosts(value, mapping()["hosts"], name)
    if rule and rule.get("rendered") == "public-url" and INVENTORIES[case].get("dify_public_url"):
        public = INVENTORIES[case]["dify_public_url"].rstrip("/")
        if not value:
            return public
        if value.startswith("ws://localhost"):
            return re.sub(r"^ws://localhost(:\d+)?", re.sub(r"^http", "ws", public), value)
        return re.sub(r"^http://localhost(:\d+)?", public, value)
    return value


def same(a: str | None, b: str | None) -> bool:
    a, b = a or "", b or ""
    if a.lower() in BOOLEAN and b.lower() in BOOLEAN:
        return a.lower() == b.lower()
    return a == b


def show(value: tuple[str, str] | None) -> str:
    """A rendered value for a message (a Secret's value never shown)."""
    if value is None:
        return "nothing"
    return f"a value from {value[1]}" if value[1].startswith("secret") else f"{value[0]!r} ({value[1]})"


def deviations(line: str, service: str, name: str, shared: bool = False) -> dict[str, Any] | None:
    return contract.deviation(mapping().get("deviations") or [], line, service, name, shared)


def report(problems: list[str]) -> None:
    if problems:
        pytest.fail(f"{len(problems)} disagreement(s) with Dify's files:\n  " + "\n  ".join(problems), pytrace=False)


def services(line: str) -> list[str]:
    return [s for s in data(line)["services"] if s in mapping()["services"]]


# ---------------------------------------------------------------------------------------- the data
def sources_of(node: Any, path: str) -> list[tuple[str, str]]:
    """Every `from` of a data file, with where it stands."""
    out = []
    if isinstance(node, dict):
        if "from" in node:
            out.append((path, str(node["from"])))
        for k, v in node.items():
            out += sources_of(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += sources_of(v, f"{path}[{i}]")
    return out


def test_every_line_file_is_complete_and_cites_its_sources():
    lines = releases()["lines"]
    assert sorted(lines, key=catalog.version_tuple) == LINES, "one contract file per release line of the catalog"
    cited = re.compile(r"^([a-z_]+#L\d+(-L\d+)?)(, .+)?$|dify#\d+|third-party|dify:docker/")
    for line in LINES:
        d = data(line)
        assert d["line"] == line
        assert d["release"] in lines[line]["patches"], f"{line}: {d['release']} is not a catalogued patch"
        assert re.fullmatch(r"[0-9a-f]{10}", d["commit"]), line
        assert all(v.startswith("dify:docker/") and d["commit"] in v for v in d["sources"].values()), line
        missing = [s for s in d["services"] if s not in mapping()["services"]]
        assert not missing, f"{line}: collection.yml maps no workload for {missing}"

        for path, ref in sources_of({k: v for k, v in d.items() if k != "sources"}, line):
            assert cited.search(ref), f"{path}: no source ({ref!r})"
            for short in re.findall(r"\b([a-z_]+)#L\d+", ref):
                assert short in d["sources"], f"{path}: unknown source {short!r}"
        for service, entry in d["services"].items():
            assert "from" in entry["image"], f"{line} {service}: image without a source"


def test_every_deviation_says_why_and_names_what_exists():
    m = mapping()
    for rule in [*(m.get("deviations") or []), *(m.get("extras") or [])]:
        assert rule.get("reason"), f"{rule} has no reason"
        assert set(rule.get("lines") or []) <= set(LINES), rule
        assert rule.get("kind") in ("deliberate", "image-default", "not-read", "kubernetes"), rule
    for rule in m.get("deviations") or []:
        rendered = rule.get("rendered", "absent")
        assert rendered in ("absent", "any", "public-url", "secret") or isinstance(rendered, dict), rule


# ---------------------------------------------------------------------------------------- environment
def env_problems(line: str, case: str) -> list[str]:
    d, m, problems = data(line), model(line, case), []
    renamed = ((d.get("third_party") or {}).get("renamed")) or {}
    for service in services(line):
        c = container(m, service)
        rule = deviations(line, service, "@workload")
        if c is None:
            if not rule:
                svc = d["services"][service]
                profile = f", profile {','.join(svc['profiles'])}" if svc.get("profiles") else ""
                problems.append(
                    f"{line} {service}: Dify's compose runs it ({contract.cite(svc['at'], d['sources'])}{profile}); "
                    f"the model renders no {where(service)}"
                )
            continue
        env = rendered_env(m, c)
        for name, entry in contract.service_env(d, service).items():
            rule = deviations(line, service, name, entry["shared"])
            target = name
            if name in renamed.get(service, {}):
                target = renamed[service][name]["to"]
            if rule and isinstance(rule.get("rendered"), dict) and rule["rendered"].get("as"):
                target = rule["rendered"]["as"]
            got = env.get(target)
            label = f"{line} {service} {name}" + (f" (as {target})" if target != name else "")
            dify = f"Dify sets {entry['value']!r} ({entry['source']})"
            mode = rule.get("rendered", "absent") if rule else None
            if mode == "any" or (mode == "absent" and got is None):
                continue
            if entry["secret"] or mode == "secret":
                if got is None or not got[1].startswith("secret"):
                    problems.append(f"{label}: {dify}, a credential; rendered {show(got)}, not from a Secret")
                continue
            want = expected(name, entry["value"], case, rule)
            if isinstance(mode, dict) and "value" in mode:
                want = str(mode["value"])
            if isinstance(mode, dict) and "directive" in mode:
                # The collection renders the program's configuration file instead of passing the variable.
                config, key = (
                    mode["config"].replace("{squid}", f"{SQUID_CONFIGS.get(service, '')}/squid.conf").split("/")
                )
                text = ((find(m, "ConfigMap", config) or {}).get("data") or {}).get(key, "")
                lines = [x.strip().rstrip(";") for x in text.splitlines()]
                want = f"{mode['directive']} {mode.get('value', want)}".strip()
                if want not in lines:
                    problems.append(f"{label}: {dify}, expected '{want}' in {config}/{key}; not rendered there")
                continue
            if not same(got[0] if got else None, want):
                problems.append(f"{label}: {dify}, expected {want!r}; rendered {show(got)} on {where(service)}")
    return problems


@pytest.mark.parametrize(("line", "case"), CASES)
def test_each_service_gets_the_environment_dify_gives_it(line, case):
    report(env_problems(line, case))


def extra_problems(line: str, case: str) -> list[str]:
    d, m, problems = data(line), model(line, case), []
    renamed = ((d.get("third_party") or {}).get("renamed")) or {}
    aliases = {r["rendered"]["as"] for r in mapping().get("deviations") or [] if isinstance(r.get("rendered"), dict)
               and r["rendered"].get("as")}  # fmt: skip
    for service in services(line):
        c = container(m, service)
        if c is None:
            continue
        known = contract.compose_names(d, service) | {r["to"] for r in renamed.get(service, {}).values()} | aliases
        for name, got in sorted(rendered_env(m, c).items()):
            if name in known or contract.deviation(mapping().get("extras") or [], line, service, name):
                continue
            problems.append(
                f"{line} {service} {name}: Dify's compose does not set it; rendered {show(got)} on {where(service)}"
            )
    return problems


@pytest.mark.parametrize(("line", "case"), CASES)
def test_no_service_gets_a_variable_dify_does_not_set(line, case):
    report(extra_problems(line, case))


def value_of(m: dict[str, Any], member: str) -> tuple[str, str | None]:
    service, _dot, rest = member.partition(".")
    name, _hash, part = rest.partition("#")
    c = container(m, service)
    got = rendered_env(m, c).get(name) if c else None
    if got is None:
        return member, None
    value = got[0]
    if part == "password":
        value = urllib.parse.urlsplit(value).password or ""
    return member, value


@pytest.mark.parametrize(("line", "case"), CASES)
def test_values_that_must_agree_are_one_value(line, case):
    d, m, problems = data(line), model(line, case), []
    renamed = ((d.get("third_party") or {}).get("renamed")) or {}
    for group in d.get("agree") or []:
        members = []
        for member in group["vars"]:
            service, _dot, rest = member.partition(".")
            name = rest.split("#")[0]
            if name in renamed.get(service, {}):
                member = member.replace(name, renamed[service][name]["to"])
            members.append(member)
        values = [value_of(m, member) for member in members]
        present = [(k, v) for k, v in values if v is not None]
        distinct = sorted({v for _member, v in present})
        if len(present) < 2:
            problems.append(
                f"{line} {group['what']}: fewer than two of {', '.join(members)} rendered; nothing to compare"
            )
        elif len(distinct) > 1:
            problems.append(
                f"{line} {group['what']}: must be one value; rendered "
                + ", ".join(f"{k} = value #{distinct.index(v) + 1}" for k, v in present)
            )
    report(problems)


# ---------------------------------------------------------------------------------------- images, ports, volumes
def image_parts(image: str) -> tuple[str, str]:
    last = image.rsplit("/", 1)
    repo = image.rsplit(":", 1)[0] if ":" in last[-1] else image
    return repo, catalog.tag_of(image)


@pytest.mark.parametrize("line", LINES)
def test_each_service_runs_the_image_dify_names(line):
    d, m, problems = data(line), model(line, "default"), []
    for service in services(line):
        c = container(m, service)
        if c is None:
            continue
        entry = d["services"][service]["image"]
        rule = deviations(line, service, "@image")
        if rule and rule.get("rendered") == "any":
            continue
        if image_parts(c["image"]) != image_parts(entry["value"]):
            problems.append(
                f"{line} {service} image: Dify runs {entry['value']} ({contract.cite(entry['from'], d['sources'])}); "
                f"rendered {c['image']} on {where(service)}"
            )
    report(problems)


def service_ports(m: dict[str, Any], name: str) -> set[int]:
    svc = find(m, "Service", name)
    return {p["port"] for p in (svc or {}).get("spec", {}).get("ports", [])}


@pytest.mark.parametrize("line", LINES)
def test_each_service_is_reached_on_the_ports_dify_uses(line):
    d, m, problems = data(line), model(line, "default"), []
    for service, ports in (d.get("ports") or {}).items():
        if service not in mapping()["hosts"] or container(m, service) is None:
            continue
        host = mapping()["hosts"][service]
        for p in ports:
            rule = deviations(line, service, f"@port:{p['port']}")
            if rule:
                continue
            if int(p["port"]) not in service_ports(m, host):
                problems.append(
                    f"{line} {service} port {p['port']}: Dify reaches it there "
                    f"({contract.cite(p['from'], d['sources'])}); "
                    f"Service {host} has ports {sorted(service_ports(m, host)) or 'none (no Service)'}"
                )
    report(problems)


@pytest.mark.parametrize("line", LINES)
def test_each_service_keeps_its_data_where_dify_mounts_it(line):
    d, m, problems = data(line), model(line, "default"), []
    third = ((d.get("third_party") or {}).get("volumes")) or {}
    for service in services(line):
        c = container(m, service)
        if c is None:
            continue
        mounts = {v["mountPath"] for v in c.get("volumeMounts") or []}
        for v in [*(d["services"][service].get("volumes") or []), *third.get(service, [])]:
            if deviations(line, service, f"@volume:{v['path']}"):
                continue
            if v["path"] not in mounts:
                problems.append(
                    f"{line} {service} volume {v['path']}: Dify mounts {v.get('host', 'a volume')} there "
                    f"({contract.cite(v['from'], d['sources'])}); {where(service)} mounts {sorted(mounts) or 'nothing'}"
                )
    report(problems)


@pytest.mark.parametrize("line", LINES)
def test_each_service_runs_as_the_user_dify_expects(line):
    d, m, problems = data(line), model(line, "default"), []
    for service in services(line):
        user = d["services"][service].get("user")
        w = workload(m, service)
        if not user or w is None:
            continue
        uid, _colon, gid = str(user["value"]).partition(":")
        pod = w["spec"]["template"]["spec"].get("securityContext") or {}
        if str(pod.get("runAsUser")) != uid or (gid and str(pod.get("runAsGroup")) != gid):
            problems.append(
                f"{line} {service} user: Dify expects {user['value']} ({contract.cite(user['from'], d['sources'])}); "
                f"{where(service)} runs as {pod.get('runAsUser')}:{pod.get('runAsGroup')}"
            )
    report(problems)


@pytest.mark.parametrize("line", LINES)
def test_each_health_check_asks_what_dify_asks(line):
    d, m, problems = data(line), model(line, "default"), []
    for service in services(line):
        check = d["services"][service].get("healthcheck")
        c = container(m, service)
        if not check or c is None:
            continue
        url = re.search(r"http://localhost:(\d+)(/\S*)", " ".join(check["value"]) if isinstance(check["value"], list)
                        else check["value"])  # fmt: skip
        if not url:
            continue
        paths = {
            (c.get(p) or {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe", "startupProbe")
        }
        if url.group(2) not in paths and not deviations(line, service, "@healthcheck"):
            problems.append(
                f"{line} {service} health check: Dify asks GET {url.group(2)} "
                f"({contract.cite(check['from'], d['sources'])}); "
                f"{where(service)} probes {sorted(p for p in paths if p) or 'no HTTP path'}"
            )
    report(problems)


# ---------------------------------------------------------------------------------------- nginx
def nginx_routes(conf: str) -> dict[str, str]:
    """location -> upstream (host:port) of the rendered nginx.conf."""
    out, location = {}, None
    for raw in conf.splitlines():
        s = raw.strip()
        match = re.match(r"location\s+(=\s*)?(\S+)\s*\{", s)
        if match:
            location = match.group(2)
            continue
        match = re.match(r"proxy_pass\s+https?://([^;/]+)", s)
        if match and location:
            out[location] = match.group(1)
    return out


@pytest.mark.parametrize(("line", "case"), CASES)
def test_nginx_routes_every_path_dify_routes(line, case):
    d, m, problems = data(line), model(line, case), []
    cm = find(m, "ConfigMap", "dify-nginx")
    routes = nginx_routes(cm["data"]["nginx.conf"])
    for route in d["nginx"]["routes"]:
        want = contract.map_hosts(route["upstream"], mapping()["hosts"])
        if deviations(line, "nginx", f"@route:{route['location']}"):
            continue
        if routes.get(route["location"]) != want:
            problems.append(
                f"{line} nginx {route['location']}: Dify routes it to {route['upstream']} "
                f"({contract.cite(route['from'], d['sources'])}), expected {want}; rendered "
                f"{routes.get(route['location']) or 'no such location (falls through to ' + routes.get('/', '?') + ')'}"
            )
    report(problems)


# ---------------------------------------------------------------------------------------- squid
def squid(conf: str) -> dict[str, Any]:
    acls: dict[str, list[str]] = {}
    directives: list[str] = []
    for raw in conf.splitlines():
        s = raw.split("#", 1)[0].strip()
        if not s:
            continue
        parts = s.split()
        if parts[0] == "acl":
            values = [v for v in parts[3:] if not v.startswith("-")]
            acls.setdefault(parts[1], []).extend(values)
        else:
            directives.append(s)
    return {"acls": acls, "directives": directives}


def single_label_hosts(conf: dict[str, Any]) -> list[str]:
    """Hosts squid must resolve that have no dot: cache_peer hosts, dstdomain values."""
    hosts = [d.split()[1] for d in conf["directives"] if d.startswith("cache_peer ")]
    return sorted({h for h in hosts if "." not in h and not re.fullmatch(r"[\d:]+", h)})


SQUID_CONFIGS = {"ssrf_proxy": "dify-ssrf-proxy", "agent_ssrf_proxy": "dify-agent-ssrf-proxy"}


@pytest.mark.parametrize(("line", "case"), CASES)
def test_squid_allows_and_denies_what_dify_does(line, case):
    d, m, problems = data(line), model(line, case), []
    hosts = mapping()["hosts"]
    for service, facts in (d.get("squid") or {}).items():
        cm = find(m, "ConfigMap", SQUID_CONFIGS[service])
        if cm is None:
            if not deviations(line, service, "@workload"):
                problems.append(
                    f"{line} {service}: Dify configures it; the model renders no ConfigMap {SQUID_CONFIGS[service]}"
                )
            continue
        conf = squid(cm["data"]["squid.conf"])

        def cite(f, sources=d["sources"]):
            return contract.cite(f, sources)

        for key, acl in (("safe_ports", "Safe_ports"), ("ssl_ports", "SSL_ports")):
            if key not in facts or deviations(line, service, f"@squid:{key}"):
                continue
            want, got = facts[key]["value"], conf["acls"].get(acl, [])
            lacking = [p for p in want if p not in got]
            if lacking:
                problems.append(
                    f"{line} {service} acl {acl}: Dify allows ports {' '.join(want)} ({cite(facts[key]['from'])}); "
                    f"rendered {' '.join(got) or 'none'} (lacks {' '.join(lacking)})"
                )
        if "deny_destinations" in facts and not deviations(line, service, "@squid:deny_destinations"):
            got = [v for name, vs in conf["acls"].items() for v in vs if "denied" in name or "private" in name]
            # A range left out on purpose is a deviation of its own ("@squid:deny_destinations <cidr>").
            lacking = [c for c in facts["deny_destinations"]["value"]
                       if c not in got and not deviations(line, service, f"@squid:deny_destinations {c}")]  # fmt: skip
            if lacking:
                problems.append(
                    f"{line} {service} denied destinations: Dify denies "
                    f"{' '.join(facts['deny_destinations']['value'])} ({cite(facts['deny_destinations']['from'])}); "
                    f"rendered denies lack {' '.join(lacking)}"
                )
        rendered_ports = [x.split()[1] for x in conf["directives"] if x.startswith("http_port ")]
        dify_ports = [p["value"].split()[0] for p in facts.get("http_ports") or []]
        for port in dify_ports:
            if port not in rendered_ports and not deviations(line, service, f"@squid:http_port {port}"):
                problems.append(
                    f"{line} {service} http_port {port}: Dify listens there "
                    f"({cite(facts['http_ports'][0]['from'])}); rendered {rendered_ports}"
                )
        for port in rendered_ports:
            if port not in dify_ports and not deviations(line, service, f"@squid:http_port {port}"):
                problems.append(
                    f"{line} {service} http_port {port}: rendered, but Dify's squid template listens on "
                    f"{' '.join(dify_ports)} only ({', '.join(cite(p['from']) for p in facts.get('http_ports') or [])})"
                )
        for peer in facts.get("cache_peers") or []:
            host, port = peer["value"].split()[1], peer["value"].split()[3]
            want = f"{hosts.get(host, host)} parent {port}"
            if not any(x.startswith(f"cache_peer {want}") for x in conf["directives"]):
                problems.append(
                    f"{line} {service} {peer['value']} ({cite(peer['from'])}): rendered no cache_peer {want}"
                )
        for key, values in facts.items():
            if not key.startswith("dstdomain_") or deviations(line, service, f"@squid:{key}"):
                continue
            for v in values["value"]:
                want = hosts.get(v, v)
                if not any(want in vs for vs in conf["acls"].values()):
                    problems.append(
                        f"{line} {service} dstdomain {v}: Dify's ACL names it ({cite(values['from'])}), "
                        f"expected {want}; no rendered ACL names it"
                    )
        # Compose's networks resolve single-label service names; squid resolves with its own DNS client,
        # which ignores the resolver's search list unless dns_defnames is on (squid.conf.documented).
        names = single_label_hosts(conf)
        names += sorted({v for name, vs in conf["acls"].items() for v in vs if name.startswith(("to_", "dst_"))
                         and "." not in v and re.match(r"^[a-z]", v)})  # fmt: skip
        if (
            names
            and "dns_defnames on" not in conf["directives"]
            and not deviations(line, service, "@squid:dns_defnames")
        ):
            problems.append(
                f"{line} {service} dns_defnames: the rendered squid.conf names {', '.join(sorted(set(names)))} by "
                "single-label Kubernetes Service names (Dify's compose resolves service names on its networks); "
                "squid resolves them only with 'dns_defnames on' (the resolver's search path) or by their full "
                "names; rendered neither"
            )
    report(problems)


# ---------------------------------------------------------------------------------------- network
def component_of(service: str) -> str:
    return mapping()["services"][service]["workload"].removeprefix("dify-")


def policy(m: dict[str, Any], component: str) -> dict[str, Any]:
    return (find(m, "NetworkPolicy", f"dify-{component}") or {}).get("spec") or {}


def allows(m: dict[str, Any], client: str, server: str, port: int) -> bool:
    """Whether the rendered NetworkPolicies let the client's pods open a connection to the server's."""

    def selects(peer: dict[str, Any], component: str) -> bool:
        labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
        return labels.get("app.kubernetes.io/component") == component

    def on(rule: dict[str, Any]) -> bool:
        return not rule.get("ports") or any(p.get("port") == port for p in rule["ports"])

    egress = any(
        on(r) and any(selects(p, server) for p in r.get("to") or []) for r in policy(m, client).get("egress") or []
    )
    ingress = any(
        on(r) and any(selects(p, client) for p in r.get("from") or []) for r in policy(m, server).get("ingress") or []
    )
    return egress and ingress


def internet(m: dict[str, Any], component: str) -> bool:
    return any(
        (p.get("ipBlock") or {}).get("cidr") == "0.0.0.0/0"
        for r in policy(m, component).get("egress") or []
        for p in r.get("to") or []
    )


def flows(line: str) -> list[dict[str, Any]]:
    """Every connection Dify's files show: the compose host names in a service's environment
    (where the collection renders that variable), nginx's upstreams, squid's peers and the
    data's flows."""
    d, hosts, out = data(line), mapping()["hosts"], []
    pattern = re.compile(r"(?:^|//|@)(" + "|".join(sorted(hosts, key=len, reverse=True)) + r"):(\d+)")
    for service in services(line):
        for name, entry in contract.service_env(d, service).items():
            rule = deviations(line, service, name, entry["shared"])
            if rule and rule.get("rendered") in ("absent", "any"):
                continue
            for host, port in pattern.findall(entry["value"]):
                if host != service:
                    out.append({"client": service, "server": f"{host}:{port}", "from": entry["source"], "why": name})
    for route in d["nginx"]["routes"]:
        out.append({"client": "nginx", "server": route["upstream"], "from": contract.cite(route["from"], d["sources"]),
                    "why": f"location {route['location']}"})  # fmt: skip
    for service, facts in (d.get("squid") or {}).items():
        for peer in facts.get("cache_peers") or []:
            parts = peer["value"].split()
            cited = contract.cite(peer["from"], d["sources"])
            out.append({"client": service, "server": f"{parts[1]}:{parts[3]}", "from": cited, "why": "cache_peer"})
    for flow in d.get("flows") or []:
        out.append(dict(flow, **{"from": contract.cite(flow["from"], d["sources"])}))
    return out


@pytest.mark.parametrize(("line", "case"), CASES)
def test_network_policies_let_through_every_connection_dify_makes(line, case):
    m, problems, seen = model(line, case), [], set()
    for flow in flows(line):
        client, server = flow["client"], flow["server"]
        key = (client, server)
        if key in seen or container(m, client) is None:
            continue
        seen.add(key)
        if deviations(line, client, f"@flow:{server}"):
            continue
        if server == "internet":
            via = flow.get("via")
            ok = (
                allows(m, component_of(client), component_of(via), 3128) and internet(m, component_of(via))
                if via
                else internet(m, component_of(client))
            )
            target = "the internet" + (f" through {via}" if via else "")
        else:
            host, port = server.split(":")
            if container(m, host) is None:
                continue
            ok = allows(m, component_of(client), component_of(host), int(port))
            target = f"{mapping()['hosts'][host]}:{port}"
        if not ok:
            problems.append(
                f"{line} {client} -> {server}: Dify's {client} connects there ({flow['why']}; {flow['from']}); "
                f"the NetworkPolicies do not let {where(client)} reach {target}"
            )
    report(problems)


def test_the_checks_see_the_model():
    """The helpers find what they look for (a guard against a test that passes by finding nothing)."""
    m = model(LINES[0], "default")
    c = container(m, "api")
    env = rendered_env(m, c)
    assert env["MODE"] == ("api", "env")
    assert env["SECRET_KEY"][1] == "secret dify-credentials"
    assert env["DB_HOST"] == ("dify-postgres", "configmap dify-shared-env")
    assert nginx_routes(find(m, "ConfigMap", "dify-nginx")["data"]["nginx.conf"])["/console/api"] == "dify-api:5001"
    assert allows(m, "api", "sandbox", 8194) and not allows(m, "sandbox", "api", 5001)
    assert contract.map_hosts("redis://:p@redis:6379/1", mapping()["hosts"]) == "redis://:p@dify-redis:6379/1"
    assert contract.map_hosts("https://api.openai.com/v1", mapping()["hosts"]) == "https://api.openai.com/v1"
    assert fnmatch.fnmatchcase("QDRANT_URL", "QDRANT_*")
