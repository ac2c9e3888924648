"""The spec's JSON Schema, generated from the models ``--dry-run`` validates with.

Editors with a YAML language server (VS Code's YAML extension, Neovim's yamlls, JetBrains)
complete and check a spec from it: put ``# yaml-language-server: $schema=<path>`` on the
spec's first line, or map ``ablations/**/*.yaml`` to it in the editor's settings. The schema
ships with the package (``mixerlab/spec.schema.json``; ``mixerlab schema`` prints its path or
writes it) and is generated, never edited: :func:`spec_schema` builds it from
:class:`~mixerlab.spec.Spec` with the ``dataset``, ``train`` and ``model`` sections (plain
dicts in ``Spec``, parsed later by the config models) replaced by those models' own schemas,
and ``grid``/``nuisance`` keys limited to the factors a grid may vary, each a list of that
field's values. A key added to a config model is in the next generated schema; a test checks
that the shipped file is the generated one.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

from mixerlab.config import DataConfig, ModelConfig, TrainConfig
from mixerlab.factors import DATA_FACTORS, GRID_FACTORS, MODEL_FACTORS, RECIPE_FACTORS
from mixerlab.spec import Spec

SCHEMA_FILE = "spec.schema.json"
_SECTIONS = {"dataset": DataConfig, "train": TrainConfig, "model": ModelConfig}
_HOW = ("execution",)  # set by the sweep, not by a spec


def _section(model, defs: dict) -> dict:
    """``model``'s schema, its definitions merged into ``defs``; unknown keys rejected."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    for key in _HOW:
        schema.get("properties", {}).pop(key, None)
    schema["additionalProperties"] = False
    return schema


def _factor_lists(names, sections: dict) -> dict:
    """``{factor: {"type": "array", "items": <the field's schema>}}`` for ``names``."""
    out = {}
    for name in names:
        owner = ("model" if name in MODEL_FACTORS else "dataset" if name in DATA_FACTORS
                 else "train")
        field = copy.deepcopy(sections[owner]["properties"].get(name, {}))
        field.pop("default", None)
        out[name] = {"type": "array", "minItems": 1, "items": field,
                     "description": f"levels of {owner}.{name}"}
    return out


def spec_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a mixerlab spec."""
    schema = Spec.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    sections = {key: _section(model, defs) for key, model in _SECTIONS.items()}
    props = schema["properties"]
    for key, section in sections.items():
        props[key] = {**section, "description": f"overrides of {_SECTIONS[key].__name__}'s defaults"}
    props["grid"] = {"anyOf": [{"type": "object", "additionalProperties": False,
                                "properties": _factor_lists(GRID_FACTORS, sections)},
                               {"type": "null"}],
                     "description": "the factors varied, each a list of levels (their product)"}
    props["nuisance"] = {"anyOf": [{"type": "object", "additionalProperties": False,
                                    "properties": _factor_lists(RECIPE_FACTORS, sections)},
                                   {"type": "null"}],
                         "description": "recipe settings tuned per arm (never compared)"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mixerlab spec"
    return schema


def shipped_path() -> Path:
    """Where the package's copy of the schema is."""
    return Path(str(resources.files("mixerlab") / SCHEMA_FILE))


def render() -> str:
    return json.dumps(spec_schema(), indent=1, sort_keys=True) + "\n"
