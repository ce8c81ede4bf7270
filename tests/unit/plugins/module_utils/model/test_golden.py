"""Golden files: the whole model (every object of every phase, the Secrets, what each phase prunes,
the pods of the Jobs, the plan) for a few inventories, pinned. A change to what the role renders
shows up here as a diff to review; regenerate with DIFY_CE_UPDATE_GOLDEN=1 and explain it in the
commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from cases import CASES, prepare

GOLDEN = Path(__file__).parent / "golden"


def rendered(case: str) -> str:
    model = prepare(case)
    model.pop("changed")
    # The same objects as the application phase's, started earlier: named, not repeated.
    model["early"] = [f"{o['kind']}/{o['metadata']['name']}" for o in model["early"]]
    return yaml.safe_dump(model, sort_keys=True, width=120, allow_unicode=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_model_is_what_was_reviewed(case):
    path = GOLDEN / f"{case}.yaml"
    text = rendered(case)
    if os.environ.get("DIFY_CE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with DIFY_CE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"the model of {case!r} changed: diff it with DIFY_CE_UPDATE_GOLDEN=1 and git diff"


def test_building_the_model_is_deterministic():
    assert rendered("external") == rendered("external")
