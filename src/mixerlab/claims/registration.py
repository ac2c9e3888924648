"""``<study>/claims.json``: each claim as registered when a sweep of the study started.

A pre-registration states the analysis before the data exist. Every sweep session records
the spec's claims (canonical form and fingerprint, :meth:`~mixerlab.claims.ClaimSpec.canonical`)
with the number of trials already finished; a claim whose fingerprint changed gets a new
version beside the old one, never in place of it. The report decides a claim only where the
version it reads was registered before any trial finished (:func:`status`).
"""

from __future__ import annotations

import json
from pathlib import Path

from mixerlab import provenance
from mixerlab.errors import ConfigError
from mixerlab.results import atomic_write_text

REGISTRY = "claims.json"


def _read(folder: Path) -> dict:
    path = Path(folder) / REGISTRY
    if not path.exists():
        return {"claims": {}}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path}: damaged ({err}); restore it from version control: it is the "
                          "study's registration and cannot be rebuilt after the fact") from None


def finished_trials(folder: Path) -> int:
    """Trials with a record (a record is written only when a trial finished)."""
    return sum(1 for _ in (Path(folder) / "records").glob("*.json"))


def register(folder: Path, claims) -> dict:
    """Record ``claims`` (a spec's list, or None) in the study at ``folder``; returns the
    registry. A claim already registered as it is now is left as it was."""
    doc = _read(folder)
    if not claims:
        return doc
    done, now = finished_trials(folder), provenance.now()
    changed = False
    for claim in claims:
        versions = doc["claims"].setdefault(claim.name, [])
        if versions and versions[-1]["fingerprint"] == claim.fingerprint():
            continue
        versions.append({"fingerprint": claim.fingerprint(), "registered_at": now,
                         "trials_finished_before": done, "claim": claim.canonical()})
        changed = True
    if changed:
        atomic_write_text(Path(folder) / REGISTRY, json.dumps(doc, indent=2))
    return doc


def status(folder: Path, claim) -> dict:
    """Whether ``claim`` (as the analysis reads it) was registered before the data:
    ``registered`` (True only then), ``note`` (what the report says) and ``registered_at``."""
    versions = _read(folder)["claims"].get(claim.name, [])
    fp = claim.fingerprint()
    match = [v for v in versions if v["fingerprint"] == fp]
    if not match:
        note = ("changed after it was registered: not the registered claim" if versions else
                "never registered (no sweep of this study ran with it)")
        return {"registered": False, "note": note, "registered_at": None}
    v = match[0]
    n = v["trials_finished_before"]
    if n == 0:  # edits made before any trial finished are part of the registration
        return {"registered": True, "registered_at": v["registered_at"],
                "note": f"registered {v['registered_at']}, before any trial finished"}
    what = "changed" if versions[0]["fingerprint"] != fp else "registered"
    return {"registered": False, "registered_at": v["registered_at"],
            "note": f"{what} at {v['registered_at']}, after {n} trial(s) had finished"}
