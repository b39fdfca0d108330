"""Compare drover's answers with Nova's on recorded cases, request by request.

Three figures per case, as the conformance goal states them: the same chosen hosts (every
instance of a request, or both sides finding no valid host), the same top-10 order of the first
instance's weighed hosts, and those weights equal to 1e-9 relative.

``python -m tests.conformance.compare [--engine core|reference] [CASE.json.gz ...]`` prints them
for the recorded cases (all of ``cases/`` by default) without Nova installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
from pathlib import Path
from typing import Any

from .drover_run import ENGINES

CASES = Path(__file__).with_name("cases")
REL = 1e-9


@dataclasses.dataclass
class Agreement:
    name: str
    requests: int = 0
    same_hosts: int = 0
    same_top: int = 0
    same_weights: int = 0
    differences: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        n = self.requests
        return (
            f"{self.name}: same hosts {self.same_hosts}/{n}, same top-10 {self.same_top}/{n}, "
            f"weights equal {self.same_weights}/{n}"
        )


def weights_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=REL)


def compare(
    name: str, requests: list[dict[str, Any]], nova: list[dict[str, Any]], drover: list[dict[str, Any]]
) -> Agreement:
    agg = Agreement(name)
    for i, (req, n, d) in enumerate(zip(requests, nova, drover, strict=True)):
        agg.requests += 1
        if n["ok"] == d["ok"] and n["hosts"] == d["hosts"]:
            agg.same_hosts += 1
        else:
            agg.differences.append(f"request {i}: hosts nova={n['hosts']} drover={d['hosts']} ({_brief(req)})")
        if [h for h, _ in n["top"]] == [h for h, _ in d["top"]]:
            agg.same_top += 1
            if all(weights_equal(a, b) for (_, a), (_, b) in zip(n["top"], d["top"], strict=True)):
                agg.same_weights += 1
            else:
                agg.differences.append(f"request {i}: weights nova={n['top'][:3]} drover={d['top'][:3]}")
        else:
            agg.differences.append(f"request {i}: top nova={n['top'][:3]} drover={d['top'][:3]} ({_brief(req)})")
    return agg


def _brief(req: dict[str, Any]) -> str:
    parts = [f"{len(req['instance_ids'])}x {req['vcpus']}/{req['memory_mb']}/{req['root_gb']}"]
    if req["availability_zone"]:
        parts.append(f"az={req['availability_zone']}")
    if req["flavor_extra_specs"]:
        parts.append(f"extra_specs={req['flavor_extra_specs']}")
    if req["image_properties"]:
        parts.append(f"image={req['image_properties']}")
    if req["group"]:
        parts.append(f"group={req['group']['policy']} rules={req['group']['rules']}")
    return " ".join(parts)


def load_recorded(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as f:
        data: dict[str, Any] = json.load(f)
    return data


def recorded_paths() -> list[Path]:
    return sorted(CASES.glob("*.json.gz"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))


def check(path: Path, engine: str = "core") -> Agreement:
    rec = load_recorded(path)
    drover = ENGINES[engine](rec["case"])
    return compare(path.name, rec["case"]["requests"], rec["nova"], drover)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", choices=sorted(ENGINES), default="core")
    p.add_argument("--verbose", "-v", action="store_true", help="list every differing request")
    p.add_argument("cases", nargs="*", type=Path)
    args = p.parse_args()
    for path in args.cases or recorded_paths():
        agreement = check(path, args.engine)
        print(agreement.line())
        if args.verbose:
            for d in agreement.differences:
                print("   ", d)


if __name__ == "__main__":
    main()
