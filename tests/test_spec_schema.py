"""The spec's JSON Schema: generated from the config models, shipped, and true to every spec."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import create_model

from mixerlab import spec_schema
from mixerlab.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "ablations").rglob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(json.loads(spec_schema.shipped_path().read_text()))


def test_the_shipped_schema_is_the_generated_one():
    assert spec_schema.shipped_path().read_text() == spec_schema.render(), (
        "src/mixerlab/spec.schema.json is stale: run `mixerlab schema --out src/mixerlab/spec.schema.json`")


def test_every_committed_spec_validates(validator):
    assert len(SPECS) > 20
    for path in SPECS:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(
            yaml.safe_load(path.read_text()))]
        assert not errors, f"{path.relative_to(ROOT)}: {errors[:3]}"


@pytest.mark.parametrize("bad,where", [
    ({"tarin": {"epochs": 3}}, "tarin"),
    ({"model": {"widht": 64}}, "widht"),
    ({"grid": {"mixer": ["conv"], "patch_sise": [4]}}, "patch_sise"),
    ({"train": {"schedule": "linear"}}, "linear"),
    ({"grid": {"mixer": []}}, "is not valid under any of the given schemas"),
])
def test_unknown_keys_and_bad_values_are_rejected(validator, bad, where):
    spec = {"name": "s", "question": "q", "grid": {"mixer": ["conv"]}, **bad}
    messages = " ".join(e.message for e in validator.iter_errors(spec))
    assert where in messages


def test_a_key_added_to_a_config_model_is_in_the_schema(monkeypatch):
    grown = create_model("ModelConfig", __base__=ModelConfig, token_dropout=(float, 0.0))
    monkeypatch.setitem(spec_schema._SECTIONS, "model", grown)
    schema = spec_schema.spec_schema()
    assert "token_dropout" in schema["properties"]["model"]["properties"]
    assert "token_dropout" not in json.loads(spec_schema.shipped_path().read_text())["properties"]["model"]["properties"]


def test_cli_prints_the_path_and_writes_the_schema(run_cli, tmp_path):
    code, out, _ = run_cli("schema")
    assert code == 0 and Path(out.strip()) == spec_schema.shipped_path()
    code, _, _ = run_cli("schema", "--out", str(tmp_path / "s.json"))
    assert code == 0 and json.loads((tmp_path / "s.json").read_text())["title"] == "mixerlab spec"
