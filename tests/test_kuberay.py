"""deploy/kuberay/rayjob.yaml: its structure against KubeRay's RayJob CRD, and what mixerlab needs.

No Kubernetes here: the ``required`` lists of the CRD's schema, extracted by
scripts/kuberay_required.py into tests/data/kuberay_rayjob_required.json (with the KubeRay
commit they come from), are checked at every level of the manifest. Then what a study needs
and the CRD cannot say: the entrypoint runs ``mixerlab sweep`` on a spec of this repository,
every Ray container mounts the shared results volume where ``--results`` points, and Ray is
told the CPUs and GPUs its container has. Each check is also shown to fail on a broken copy.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy/kuberay"
EXTRACT = json.loads((Path(__file__).parent / "data/kuberay_rayjob_required.json").read_text())
IMAGE_REPO = "/opt/mixerlab"  # where the image holds this repository (rayjob.yaml's header)
MAX_NAME = 47  # KubeRay's MaxRayJobNameLength (utils/constant.go: 53 - 6), checked on create


def manifest() -> dict:
    return yaml.safe_load((DEPLOY / "rayjob.yaml").read_text())


def at(doc, path: str) -> list[tuple[str, object]]:
    """Every node at a schema path ('a.b[].c'), with its concrete path ('a.b[0].c')."""
    found = [("", doc)]
    for part in filter(None, path.split(".")):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        step = []
        for where, node in found:
            if isinstance(node, dict) and name in node:
                here = f"{where}.{name}".lstrip(".")
                value = node[name]
                if not items:
                    step.append((here, value))
                elif isinstance(value, list):
                    step += [(f"{here}[{i}]", v) for i, v in enumerate(value)]
        found = step
    return found


def missing_required(doc) -> list[str]:
    """Where the manifest lacks a field the CRD requires, or a map's value has the wrong type."""
    problems = [f"{key}: missing" for key, want in (("apiVersion", "ray.io/v1"), ("kind", "RayJob"))
                if doc.get(key) != want]
    for path, required in EXTRACT["required"].items():
        for where, node in at(doc, path):
            problems += [f"{where or '(root)'}: required field {key!r} missing"
                         for key in required if not isinstance(node, dict) or key not in node]
    for path, kind in EXTRACT["maps"].items():
        for where, node in at(doc, path):
            if kind == "string":
                problems += [f"{where}.{k}: {v!r} must be a string (the CRD says so)"
                             for k, v in node.items() if not isinstance(v, str)]
    return problems


def object_paths(doc, path="") -> list[str]:
    """The schema path of every object in the manifest that is not inside a map."""
    if isinstance(doc, list):
        return [p for item in doc for p in object_paths(item, f"{path}[]")]
    if not isinstance(doc, dict) or path in EXTRACT["maps"]:
        return []
    return [path] + [p for k, v in doc.items() for p in object_paths(v, f"{path}.{k}".lstrip("."))]


def ray_groups(doc) -> list[tuple[str, dict]]:
    """(name, group spec) of the head and every worker group."""
    spec = doc["spec"]["rayClusterSpec"]
    return [("head", spec["headGroupSpec"])] + [
        (g.get("groupName", f"worker {i}"), g) for i, g in enumerate(spec.get("workerGroupSpecs", []))]


def entrypoint(doc) -> tuple[Path, str]:
    """The spec (as a path in this repository) and the --results of ``spec.entrypoint``."""
    words = shlex.split(doc["spec"]["entrypoint"])
    assert words[:2] == ["mixerlab", "sweep"], words
    results = words[words.index("--results") + 1]
    spec = words[2]
    assert spec.startswith(f"{IMAGE_REPO}/ablations/"), spec
    return ROOT / spec.removeprefix(f"{IMAGE_REPO}/"), results


def quantity(value) -> float:
    """A Kubernetes quantity of CPUs or devices: 4, "4", "4000m"."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def mount_problems(doc) -> list[str]:
    """Every container that runs Ray must mount the results PVC at the entrypoint's --results."""
    _, results = entrypoint(doc)
    claim = yaml.safe_load((DEPLOY / "results-pvc.yaml").read_text())["metadata"]["name"]
    problems = []
    for group, spec in ray_groups(doc):
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
                   for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            mounted = {m["mountPath"].rstrip("/"): m["name"] for m in c.get("volumeMounts", [])}
            if volumes.get(mounted.get(results.rstrip("/"))) != claim:
                problems.append(f"{group}/{c['name']}: no PVC {claim!r} mounted at {results}")
    return problems


def resource_problems(doc) -> list[str]:
    """rayStartParams must tell Ray the CPUs (and GPUs) the Ray container is limited to."""
    problems = []
    for group, spec in ray_groups(doc):
        params = spec.get("rayStartParams", {})
        limits = spec["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
        if "num-cpus" not in params or "cpu" not in limits:
            problems.append(f"{group}: needs rayStartParams num-cpus and a cpu limit")
        elif float(params["num-cpus"]) != quantity(limits["cpu"]):
            problems.append(f"{group}: num-cpus {params['num-cpus']} != cpu limit {limits['cpu']}")
        gpus = quantity(limits.get("nvidia.com/gpu", 0))
        if gpus and "num-gpus" not in params:
            problems.append(f"{group}: asks for {gpus:g} GPU but sets no num-gpus")
        elif float(params.get("num-gpus", 0)) != gpus:
            problems.append(f"{group}: num-gpus {params['num-gpus']} != nvidia.com/gpu limit {gpus:g}")
    return problems


def test_manifest_is_a_rayjob():
    doc = manifest()
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    name = doc["metadata"]["name"]
    assert len(name) <= MAX_NAME and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    assert doc["spec"]["shutdownAfterJobFinishes"] is True
    ttl = doc["spec"]["ttlSecondsAfterFinished"]
    assert isinstance(ttl, int) and ttl >= 0
    # The image's Ray is the project's: rayVersion says which one, as "X.Y.Z" (KubeRay's samples).
    assert doc["spec"]["rayClusterSpec"]["rayVersion"] == version("ray")


def test_manifest_has_every_field_the_crd_requires():
    assert EXTRACT["source"]["commit"] and EXTRACT["required"]["spec.rayClusterSpec"]
    assert missing_required(manifest()) == []


def test_extract_covers_every_object_of_the_manifest():
    """A new kind of object in the manifest needs its required list: re-run the script."""
    unknown = set(object_paths(manifest())) - set(EXTRACT["required"])
    assert not unknown, f"run scripts/kuberay_required.py (see its docstring) for {sorted(unknown)}"


REMOVABLE = [(path, key) for path, required in EXTRACT["required"].items() for key in required]


@pytest.mark.parametrize("path,key", REMOVABLE, ids=[f"{p}.{k}" for p, k in REMOVABLE])
def test_validator_reports_a_removed_required_field(path, key):
    doc = manifest()
    nodes = at(doc, path)
    assert nodes, f"{path}: not in the manifest"
    del nodes[-1][1][key]  # the last worker group, container, ... at that path
    problems = missing_required(doc)
    assert any(f"required field {key!r} missing" in p for p in problems), problems


def test_validator_reports_wrong_kind_and_non_string_start_params():
    doc = manifest()
    doc["kind"] = "RayCluster"
    doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = 8
    problems = missing_required(doc)
    assert "kind: missing" in problems
    assert any("num-cpus: 8 must be a string" in p for p in problems), problems


def test_entrypoint_runs_a_spec_of_this_repo_on_the_shared_volume():
    doc = manifest()
    spec_path, results = entrypoint(doc)
    assert spec_path.is_file(), spec_path
    # KubeRay pastes the entrypoint into a shell command of the submitter pod: no shell syntax.
    assert not re.search(r"[;&|$`<>()]", doc["spec"]["entrypoint"])
    assert results.startswith("/")
    from mixerlab.spec import load_spec

    need = load_spec(spec_path).resources
    workers = [g["rayStartParams"] for _, g in ray_groups(doc)[1:]]
    # One trial must fit a worker, or Tune waits forever for a node that never comes.
    assert any(need.cpu <= float(p["num-cpus"]) and need.gpu <= float(p.get("num-gpus", 0))
               for p in workers), (need, workers)


def test_every_ray_container_mounts_the_results_volume():
    assert mount_problems(manifest()) == []
    pvc = yaml.safe_load((DEPLOY / "results-pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]

    broken = manifest()
    worker = broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    worker["containers"][0]["volumeMounts"][0]["mountPath"] = "/elsewhere"
    assert mount_problems(broken) == ["gpu/ray-worker: no PVC 'mixerlab-results' mounted at /results"]


def test_ray_is_told_the_cpus_and_gpus_of_its_container():
    assert resource_problems(manifest()) == []

    broken = manifest()
    worker = broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    worker["rayStartParams"]["num-cpus"] = "16"
    del worker["rayStartParams"]["num-gpus"]
    assert resource_problems(broken) == ["gpu: num-cpus 16 != cpu limit 8",
                                         "gpu: asks for 1 GPU but sets no num-gpus"]
