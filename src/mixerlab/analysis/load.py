"""Read studies: the tidy trial table, the per-epoch history, the typed spec and the provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mixerlab.config import parse
from mixerlab.errors import ConfigError
from mixerlab.record import LADDER
from mixerlab.spec import Spec, read_yaml

REQUIRED = ("trial_id", "status", "variant", "seed", "test_acc")
RECOVER = ("the per-trial records in {p}/records/ (and Ray's state in {p}/ray/) still hold the "
           "trials: re-run the same `mixerlab sweep SPEC` command to rebuild the tables")


def _read_parquet(path: Path, study: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ConfigError(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0][:80]}); "
                          + RECOVER.format(p=study)) from None


def load_study(path: str | Path) -> pd.DataFrame:
    """One row per trial, with ``study`` set and a boolean attribute ``attrs['complete']``."""
    path = Path(path)
    table = path / "trials.parquet"
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder; give a study folder made by `mixerlab sweep`, e.g. results/quick")
    if not table.exists():
        hint = (RECOVER.format(p=path) if (path / "records").is_dir()
                else "run `mixerlab sweep SPEC` to produce one")
        raise ConfigError(f"{path}: not a study (no trials.parquet); {hint}")
    df = _read_parquet(table, path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"{table}: missing column(s) {', '.join(missing)}; " + RECOVER.format(p=path))
    spec, prov = study_spec(path), load_provenance(path)
    df["study"] = spec.name
    planned = prov.get("n_trials")
    unfinished = int(df["status"].isin(["pending", "running"]).sum())
    df.attrs["complete"] = unfinished == 0 and (planned is None or run_ids(df).nunique() >= planned)
    df.attrs["planned"] = planned
    return df


def run_ids(df: pd.DataFrame) -> pd.Series:
    """The trial each row comes from: its own id, or for a budget ladder's row (one trial, a
    row per budget) the ladder's (the ``ladder`` column). What "trials" counts against a plan."""
    if LADDER in df.columns:
        return df[LADDER].where(df[LADDER].notna(), df["trial_id"])
    return df["trial_id"]


def load_studies(paths) -> pd.DataFrame:
    frames = [load_study(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df.attrs["complete"] = all(f.attrs.get("complete", True) for f in frames)
    df.attrs["planned"] = sum(f.attrs.get("planned") or len(f) for f in frames)
    return df


def load_history(paths) -> pd.DataFrame:
    frames = []
    for p in map(Path, paths):
        if (p / "history.parquet").exists():
            frames.append(_read_parquet(p / "history.parquet", p))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def study_spec(path) -> Spec:
    """The spec a study ran (its ``spec.yaml``), typed as the sweep validated it. A folder
    without one (tables written by hand) gets an empty spec named after the folder."""
    f = Path(path) / "spec.yaml"
    if not f.exists():
        return Spec(name=Path(path).name or "study", question="")
    raw = read_yaml(f)
    if not isinstance(raw, dict):
        raise ConfigError(f"{f}: not a spec (a YAML mapping); restore it from the study's provenance "
                          "or re-run the sweep command")
    return parse(Spec, raw, str(f))


def load_provenance(path) -> dict:
    f = Path(path) / "provenance.json"
    try:
        return json.loads(f.read_text()) if f.exists() else {}
    except ValueError:
        return {}
