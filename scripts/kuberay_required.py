"""Extract the ``required`` lists of KubeRay's RayJob CRD that deploy/kuberay/rayjob.yaml meets.

Walks the CRD's ``v1`` ``openAPIV3Schema`` along every object the manifest has (plus the
levels every RayJob has: spec, rayClusterSpec, head and worker groups, pod templates and
containers) and writes, for each, its schema path and its ``required`` list (empty where the
CRD requires nothing), and which objects are free-form string maps. tests/test_kuberay.py
checks the manifest against that file. Re-run it when the manifest gains a new kind of object
or KubeRay changes its CRD:

    git clone https://github.com/ray-project/kuberay && git -C kuberay rev-parse HEAD
    python scripts/kuberay_required.py kuberay/ray-operator/config/crd/bases/ray.io_rayjobs.yaml \\
        --commit SHA --describe "$(git -C kuberay describe --tags)"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy/kuberay/rayjob.yaml"
OUT = ROOT / "tests/data/kuberay_rayjob_required.json"
CRD_PATH = "ray-operator/config/crd/bases/ray.io_rayjobs.yaml"
# Walked even where the manifest lacks them, so a manifest that drops one is still checked.
ALWAYS = ["spec", "spec.rayClusterSpec", "spec.rayClusterSpec.headGroupSpec",
          "spec.rayClusterSpec.headGroupSpec.template",
          "spec.rayClusterSpec.headGroupSpec.template.spec",
          "spec.rayClusterSpec.headGroupSpec.template.spec.containers[]",
          "spec.rayClusterSpec.workerGroupSpecs[]",
          "spec.rayClusterSpec.workerGroupSpecs[].template",
          "spec.rayClusterSpec.workerGroupSpecs[].template.spec",
          "spec.rayClusterSpec.workerGroupSpecs[].template.spec.containers[]"]


def schema_at(root: dict, path: str) -> dict:
    node = root
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        node = node["properties"][name]
        if items:
            node = node["items"]
    return node


def is_map(node: dict) -> bool:
    """Keys the schema does not name: a map (labels, limits, rayStartParams), or an object it
    leaves to Kubernetes (the RayJob's own metadata)."""
    return "properties" not in node


def walk(doc, node: dict, path: str, required: dict, maps: dict) -> None:
    if isinstance(doc, list):
        for item in doc:
            walk(item, node["items"], f"{path}[]", required, maps)
        return
    if not isinstance(doc, dict):
        return
    if is_map(node):
        values = node.get("additionalProperties", {})
        maps[path] = ("int-or-string" if values.get("x-kubernetes-int-or-string")
                      else values.get("type", "unchecked"))
        return
    required[path] = sorted(node.get("required", []))
    for key, value in doc.items():
        if key not in node.get("properties", {}):
            raise SystemExit(f"{path}.{key}: not in the CRD's schema (a typo? KubeRay would drop it)")
        walk(value, node["properties"][key], f"{path}.{key}".lstrip("."), required, maps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crd", help=f"a checkout's {CRD_PATH}")
    ap.add_argument("--commit", required=True, help="the KubeRay commit the CRD is from")
    ap.add_argument("--describe", required=True, help="`git describe --tags` of that commit")
    args = ap.parse_args()
    crd = yaml.load(Path(args.crd).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    required: dict[str, list[str]] = {}
    maps: dict[str, str] = {}
    walk(yaml.safe_load(MANIFEST.read_text()), schema, "", required, maps)
    for path in ALWAYS:
        required.setdefault(path, sorted(schema_at(schema, path).get("required", [])))
    out = {
        "source": {"repo": "ray-project/kuberay", "commit": args.commit, "describe": args.describe,
                   "file": CRD_PATH, "version": "v1", "schema": "openAPIV3Schema"},
        "paths": "dotted from the RayJob's root ('' is the root); '[]' steps into a list's items",
        "required": dict(sorted(required.items())),
        "maps": dict(sorted(maps.items())),
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(required)} objects, {len(maps)} maps")


if __name__ == "__main__":
    main()
