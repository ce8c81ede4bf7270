"""The fault tier's count, from what each scenario wrote: "N interruptions, N converged"."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("DIFY_CE_FAULTS_RESULTS") or ROOT / "tests" / "output" / "faults")

outcomes = {f.stem: json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))}
total = sum(len(v) for v in outcomes.values())
good = sum(1 for v in outcomes.values() for o in v if o["converged"])
for name, v in outcomes.items():
    print(f"[faults] {name}: {len(v)} interruptions, {sum(o['converged'] for o in v)} converged")
print(f"[faults] {total} interruptions, {good} converged")
sys.exit(0 if total and good == total else 1)
