"""The typed settings: variables.py is generated from the role's argument spec (a variable added to the
spec shows up here as a diff; DIFY_CE_UPDATE_GOLDEN=1 rewrites it, with the golden files), and the
properties derived from the variables (the vector store, bundled or external data services)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from role_settings import ROOT, argument_specs, params

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import (
    DATA_SERVICES,
    DATABASE,
    REDIS,
    VECTOR_STORE,
    Settings,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.variables import Variables

VARIABLES = ROOT / "plugins" / "module_utils" / "model" / "variables.py"
ELEMENTS = {"str": "str", "int": "int", "bool": "bool", "dict": "dict[str, Any]"}
SCALARS = {"str": "str", "path": "str", "raw": "Any", "int": "int", "bool": "bool", "float": "float"}
HEADER = '''# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from roles/dify/meta/argument_specs.yml by tests/unit/plugins/module_utils/model/test_settings.py:
# do not edit; DIFY_CE_UPDATE_GOLDEN=1 pytest tests/unit/plugins/module_utils/model rewrites it.
"""The role's variables with the types its argument spec gives them (after validation), as
``Settings`` reads them: ``settings.namespace`` is ``dify_namespace``."""

from __future__ import annotations

from typing import Any, Literal


class Variables:
    """Every variable of every entry point; those of one entry point only say which."""

'''


def annotation(option: dict[str, Any]) -> str:
    kind = option.get("type", "str")
    if kind == "list":
        return f"list[{ELEMENTS.get(option.get('elements', ''), 'Any')}]"
    if kind == "dict":
        return "dict[str, Any]"
    if option.get("choices") and kind == "str":
        return "Literal[" + ", ".join(f'"{c}"' for c in option["choices"]) + "]"
    return SCALARS[kind]


def generate(specs: dict[str, Any]) -> str:
    """One annotated attribute per variable, in the order of the spec (main's first)."""
    main = specs["main"]["options"]
    seen: dict[str, tuple[str, list[str]]] = {}
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            seen.setdefault(name, (annotation(option), []))[1].append(entry)
    lines = []
    for name, (kind, entries) in seen.items():
        short = name.removeprefix("dify_")
        only = "" if name in main else f"  # {', '.join(entries)} only"
        lines.append(f"    {short}: {kind}{only}\n")
    return HEADER + "".join(lines)


def test_the_typed_variables_are_the_argument_spec():
    text = generate(argument_specs())
    if os.environ.get("DIFY_CE_UPDATE_GOLDEN"):
        VARIABLES.write_text(text)
    assert text == VARIABLES.read_text(), "variables.py differs from the argument spec: regenerate it (see its header)"


def test_every_variable_the_model_reads_is_typed():
    typed = set(Variables.__annotations__)
    model = ROOT / "plugins" / "module_utils" / "model"
    read = set()
    for path in [*model.glob("*.py"), *model.glob("*/*.py")]:
        read |= set(re.findall(r"\bs\.([a-z][a-z0-9_]+)\b", path.read_text()))
        read |= set(re.findall(r"\bs\.get\(\"([a-z0-9_]+)\"", path.read_text()))
    methods = {name for name in dir(Settings) if not name.startswith("_")}
    assert read - typed - methods == set()


def settings(**inventory: Any) -> Settings:
    return Settings(params(**inventory))


@pytest.mark.parametrize(
    ("inventory", "bundled"),
    [
        ({}, ("postgres", "redis", "weaviate")),
        ({"dify_postgres_enabled": False, "dify_db_host": "db"}, ("redis", "weaviate")),
        ({"dify_redis_enabled": False, "dify_redis_host": "r"}, ("postgres", "weaviate")),
        ({"dify_weaviate_enabled": False, "dify_weaviate_endpoint": "http://w:8080"}, ("postgres", "redis")),
    ],
)
def test_each_data_service_is_bundled_or_external(inventory, bundled):
    s = settings(**inventory)
    assert s.bundled_components == bundled
    for service in DATA_SERVICES:
        assert s.bundled(service) == (s.provider(service) in bundled)


def test_the_vector_store_is_weaviate_by_default():
    s = settings()
    assert s.vector_store == "weaviate" and s.provider(VECTOR_STORE) == "weaviate"
    assert (s.provider(DATABASE), s.provider(REDIS)) == ("postgres", "redis")


def test_the_data_services_are_those_the_bundled_components_provide():
    """settings.py names the component behind each data service; the components declare the same."""
    s = settings()
    for service in DATA_SERVICES:
        assert s.provider(service) in [c.name for c in components.providers(service)], service
    stores = {c.name for c in components.providers(VECTOR_STORE)}
    assert stores == {"weaviate", "pgvector"}, "the vector stores that may be bundled"
    choices = argument_specs()["main"]["options"]["dify_vector_store"]["choices"]
    assert list(components.vector_store_kinds()) == choices, "dify_vector_store chooses among the store modules"


@pytest.mark.parametrize(
    ("inventory", "store", "bundled"),
    [
        ({"dify_vector_store": "pgvector"}, "pgvector", ("postgres", "redis", "pgvector")),
        ({"dify_vector_store": "pgvector", "dify_pgvector_enabled": False}, "pgvector", ("postgres", "redis")),
        ({"dify_vector_store": "qdrant"}, "qdrant", ("postgres", "redis")),
    ],
)
def test_the_chosen_vector_store_is_the_only_one_bundled(inventory, store, bundled):
    s = settings(**inventory)
    assert s.vector_store == store and s.provider(VECTOR_STORE) == store
    assert s.bundled_components == bundled


def test_a_copy_with_other_values_keeps_the_rest():
    s = settings()
    other = s.with_values(weaviate_enabled=False)
    assert not other.bundled(VECTOR_STORE) and s.bundled(VECTOR_STORE)
    assert other.namespace == s.namespace == other.as_dict()["dify_namespace"]
