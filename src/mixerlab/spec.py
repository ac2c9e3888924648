"""Ablation specs: a small YAML diff on documented defaults, validated before anything runs.

A spec names a study, asks one question, and says what to vary::

    name: quick
    question: Does the token mixer matter once the patch size is fixed?
    dataset: {name: fashion-mnist, train_subset: 10000}
    train: {epochs: 4}
    model: {depth: 4, width: 64}
    grid: {mixer: [conv, attention, mlp], patch_size: [4, 7]}
    seeds: 2

Every error names the file, the key and the fix (:class:`~mixerlab.errors.ConfigError`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from mixerlab.claims import ClaimSpec
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.execution import ExecutionPins

# Factors a grid may vary: one definition, shared with the analysis (mixerlab/factors.py);
# re-exported here because specs are validated against them.
from mixerlab.factors import DATA_FACTORS, GRID_FACTORS, MODEL_FACTORS, RECIPE_FACTORS  # noqa: F401

_STRICT = ConfigDict(extra="forbid")


MATCH_BY = ("params", "macs")


class Match(BaseModel):
    """Hold capacity equal: solve ``width`` (then, where its steps are too coarse, the channel
    MLP's ratio) so every variant's cost is within ``tolerance`` of the reference's.

    ``by`` may list both costs: the study then runs every variant matched each way and labels
    every trial with its ``match_by`` (attention is cheap in parameters and dear in MACs as
    tokens grow, the token-mixing MLP the reverse, so the two comparisons can disagree).
    """

    model_config = _STRICT
    # The cost held equal: 'params', 'macs', or both as a list (every variant then runs matched
    # each way).
    by: str | list[str] = "params"
    reference: dict[str, Any] = Field(default_factory=dict)  # overrides of the base model
    # 1%: tight enough that no difference between arms can be one of size; reachable for every
    # mixer because the channel MLP's ratio is solved after the width (trials.solve_capacity).
    tolerance: float = Field(0.01, gt=0, lt=1)

    @field_validator("by")
    @classmethod
    def _by(cls, v):
        values = v if isinstance(v, list) else [v]
        if not values or len(set(values)) != len(values) or not set(values) <= set(MATCH_BY):
            raise ValueError("give 'params', 'macs' or a list of distinct ones, e.g. [params, macs]")
        return v

    @property
    def by_list(self) -> list[str]:
        return self.by if isinstance(self.by, list) else [self.by]


class Resources(BaseModel):
    model_config = _STRICT
    # CPUs per trial: its torch threads, and its share of the Ray cluster.
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)  # fractions share one GPU between trials


class Scheduler(BaseModel):
    model_config = _STRICT
    # 'asha': Ray Tune's asynchronous successive halving stops trials behind their rung's best
    # (Li et al. 2020, arXiv:1810.05934).
    type: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, gt=0)  # epochs before ASHA may stop a trial
    # ASHA keeps 1 / reduction_factor of the trials at each rung.
    reduction_factor: float = Field(3.0, gt=1)


class AdaptiveSeeds(BaseModel):
    """Seeds where they decide something: ``min`` seeds of every arm, then, round by round,
    ``step`` more seeds for the arms of every comparison still undecided, up to ``max``.

    A comparison is one of the report's seed-paired differences between two arms; it is
    decided when its anytime-valid confidence sequence (:mod:`mixerlab.analysis.confidence_sequence`),
    at ``alpha`` split evenly over the study's comparisons, excludes 0 (different) or lies
    inside ``[-rope, +rope]`` points of test accuracy (equivalent). The sweep's driver plans
    each round (:mod:`mixerlab.sweep.rounds`).
    """

    model_config = _STRICT
    # 3: the fewest paired differences the confidence sequence can bound (it needs a variance
    # with at least one degree of freedom beyond the mean's).
    min: int = Field(3, ge=3)
    # Seeds an arm may reach at most: the cost's ceiling when a comparison stays undecided.
    max: int = Field(12, ge=3)
    # Points of test accuracy: a gap inside it is too small to matter (1 point is the ROPE of
    # the answer's claims, analysis/claims.py; 0.5 asks for a finer answer).
    rope: float = Field(0.5, gt=0)
    alpha: float = Field(0.05, gt=0, lt=1)  # error rate across all the study's comparisons
    step: int = Field(1, ge=1)  # seeds added to an undecided comparison per round

    @model_validator(mode="after")
    def _order(self):
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min}); give max >= min")
        return self


class Tuning(BaseModel):
    """Two-stage nuisance tuning: stage 1 runs every nuisance setting of every arm on ``seeds``
    tuning seeds (for ``epochs`` epochs if given, else the study's), and the analysis's own
    choice (:func:`~mixerlab.analysis.nuisance.choose_nuisance`, on validation accuracy) picks
    each arm's setting; stage 2 runs the study's seeds at the chosen setting only. Tuning seeds
    come first (0 .. seeds-1), the study's seeds after them, so no trial is in both stages, and
    the test accuracy of a tuning trial never enters a comparison."""

    model_config = _STRICT
    # Tuning seeds per arm and setting (seeds 0 .. seeds-1).
    seeds: int = Field(1, ge=1, le=100)
    epochs: int | None = Field(None, gt=0)  # a shorter tuning budget (None: the study's epochs)


def _seeds_kind(v) -> str:
    if isinstance(v, (dict, AdaptiveSeeds)):
        return "adaptive"
    return "list" if isinstance(v, (list, tuple)) else "count"


# Told apart by the input's shape, so an error names the one form given ('seeds.adaptive.min')
# instead of listing why the value is not each of the three.
Seeds = Annotated[Union[Annotated[list[int], Tag("list")], Annotated[int, Tag("count")],  # noqa: UP007
                        Annotated[AdaptiveSeeds, Tag("adaptive")]], Discriminator(_seeds_kind)]


# How a study is scheduled and run, not what it computes: not part of its fingerprint.
_SCHEDULING = {"question", "resources", "max_concurrent", "max_failures", "time_budget_s",
               "execution"}
# Not what the trials compute either: the claims are registered on their own
# (claims/registration.py), so editing one after trials finished is recorded as a change of
# the claim, and the study still resumes.
_NOT_COMPUTED = _SCHEDULING | {"claims"}
# Fields added after the full-dump fingerprint was retired: that form never held them, so
# they are left out of it (at their default, the only value an old study can have).
_SINCE_FULL_DUMP = {"tuning"}


class Spec(BaseModel):
    model_config = _STRICT
    # The study's name: its folder under --results and the tag of every row (letters, digits,
    # '-', '_', '.').
    name: str
    # The question the study answers, in a sentence: printed by the dry run and heading the
    # report.
    question: str
    dataset: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    configs: list[dict[str, Any]] | None = None  # explicit configurations instead of a product
    # Recipe factors re-tuned per arm (the Deep Learning Tuning Playbook's nuisance
    # hyperparameters): every scientific configuration runs at every setting, and the analysis
    # compares arms at the setting with the best validation accuracy (analysis/nuisance.py).
    nuisance: dict[str, list[Any]] | None = None
    # A count (seeds 0..n-1, after any tuning seeds), a list, or adaptive ({min, max, ...}).
    seeds: Seeds = Field(1, validate_default=True)
    tuning: Tuning | None = None  # two-stage nuisance tuning (needs 'nuisance')
    match: Match | None = None
    # CPUs (and GPU fraction) each trial asks Ray for.
    resources: Resources = Resources()
    # Trials at a time (None: as many as the resources allow; --max-concurrent overrides).
    max_concurrent: int | None = Field(None, gt=0)
    max_failures: int = Field(2, ge=0)  # retries of a trial whose worker died
    # Early stopping of trials: none, or ASHA on validation accuracy per epoch.
    scheduler: Scheduler = Scheduler()
    # Wall-clock limit of the sweep in seconds, passed to Ray Tune (None: none); the same
    # command resumes what was left.
    time_budget_s: float | None = Field(None, gt=0)
    # How trials run (mixerlab/execution.py): measured per configuration unless pinned here.
    execution: ExecutionPins = ExecutionPins()
    # The study's claims (mixerlab/claims/claim.py): a spec with claims is a confirmatory study.
    claims: list[ClaimSpec] | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("use letters, digits, '-', '_' or '.' (it names the results folder)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, AdaptiveSeeds):
            return v
        if isinstance(v, int):
            if v <= 0:
                raise ValueError("a seed count must be positive, or give a list of seeds")
            return v  # numbered after the tuning seeds by _number_seeds
        if not v or len(set(v)) != len(v):
            raise ValueError("give a non-empty list of distinct seeds, or a count")
        return v

    @model_validator(mode="after")
    def _number_seeds(self):
        # A count becomes its list here, as it always has (the fingerprint of every committed
        # study is of the list), numbered after the tuning seeds.
        if isinstance(self.seeds, int):
            first = self.tuning.seeds if self.tuning else 0
            self.seeds = list(range(first, first + self.seeds))
        return self

    @property
    def adaptive(self) -> AdaptiveSeeds | None:
        return self.seeds if isinstance(self.seeds, AdaptiveSeeds) else None

    @property
    def tuning_seed_list(self) -> list[int]:
        """Stage 1's seeds (none without ``tuning``)."""
        return list(range(self.tuning.seeds)) if self.tuning else []

    @property
    def seed_list(self) -> list[int]:
        """The seeds every arm is measured on first: all of them, or adaptive ``min``."""
        return self.max_seed_list[:self.adaptive.min] if self.adaptive else self.max_seed_list

    @property
    def max_seed_list(self) -> list[int]:
        """Every seed an arm can be measured on, in the order adaptive rounds add them."""
        first = len(self.tuning_seed_list)
        if self.adaptive:
            return list(range(first, first + self.adaptive.max))
        return list(self.seeds)  # normalised by _number_seeds

    @property
    def pins(self) -> ExecutionPins:
        """The choices the spec fixes: its ``execution:``, and ``train.channels_last`` where
        a spec sets it (it fixed the layout before ways were measured)."""
        if "channels_last" in self.train and self.execution.memory_format == "auto":
            layout = "channels_last" if self.train["channels_last"] else "contiguous"
            return self.execution.model_copy(update={"memory_format": layout})
        return self.execution

    def data_config(self) -> DataConfig:
        return parse(DataConfig, self.dataset, "dataset")

    def train_config(self) -> TrainConfig:
        return parse(TrainConfig, self.train, "train")

    def fingerprint(self) -> str:
        """Hash of what the study computes (not of how it is scheduled).

        Fields at their defaults are left out, so a field the schema gains later (with a
        default that changes nothing) leaves the fingerprint of every existing study as it
        was, and re-running its command still resumes it instead of refusing a "different spec".
        """
        d = self.model_dump(mode="json", exclude_defaults=True, exclude=_NOT_COMPUTED)
        # Where the data lie is not what is computed (as in checkpoint.config_hash): load_spec
        # resolves data_dir to an absolute path, which differs between clones of the project.
        d.get("dataset", {}).pop("data_dir", None)
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def fingerprints(self) -> set[str]:
        """This spec's fingerprint and the one studies recorded before defaults were left out
        (every field dumped), which a study folder made then still carries."""
        new = {k for k in _SINCE_FULL_DUMP if getattr(self, k) == type(self).model_fields[k].default}
        d = self.model_dump(mode="json", exclude=_NOT_COMPUTED | new)
        return {self.fingerprint(), hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]}


def read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path}: no such file; give the path of a spec, e.g. ablations/quick.yaml")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give the path of a spec file inside it")
    try:
        return yaml.safe_load(path.read_text())  # specs are data: never evaluated as code
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}; fix the YAML") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it ({err}); check the path and permissions") from None


def _check_nuisance(spec: Spec, path: Path, grid: dict) -> None:
    for key, values in (spec.nuisance or {}).items():
        if key in MODEL_FACTORS:
            raise ConfigError(f"{path}: nuisance.{key}: a model factor is what a study compares, not a "
                              f"nuisance; move it to 'grid' (nuisance factors: {', '.join(RECIPE_FACTORS)})")
        if key not in RECIPE_FACTORS:
            raise ConfigError(f"{path}: nuisance.{key}: not a recipe factor; use one of "
                              f"{', '.join(RECIPE_FACTORS)}")
        if not values:
            raise ConfigError(f"{path}: nuisance.{key}: empty list; give at least two values to tune "
                              "over, or remove it")
        if len(set(map(str, values))) != len(values):
            raise ConfigError(f"{path}: nuisance.{key}: repeated value in {values}; list each value once")
        if key in grid:
            raise ConfigError(f"{path}: nuisance.{key}: also in 'grid'; a factor is either compared "
                              "(grid) or tuned per arm (nuisance): remove it from one of them")
        for i, c in enumerate(spec.configs or []):
            if key in c:
                raise ConfigError(f"{path}: configs[{i}].{key}: also a nuisance factor; remove it from "
                                  "the configuration or from 'nuisance'")
        for v in values:
            parse(TrainConfig, {**spec.train, key: v}, f"{path}: nuisance.{key}={v!r}")


def _check_stages(spec: Spec, path: Path) -> None:
    """Tuning and adaptive seeds: the combinations whose statistics would not hold."""
    if spec.tuning and not spec.nuisance:
        raise ConfigError(f"{path}: tuning: there is nothing to tune; add 'nuisance' (e.g. "
                          "nuisance: {lr: [0.003, 0.01]}) or remove 'tuning'")
    if spec.adaptive and spec.nuisance and not spec.tuning:
        raise ConfigError(f"{path}: seeds: adaptive seeds with a nuisance grid need a tuning stage "
                          "(add tuning: {seeds: 2}): each arm's setting must be chosen before seeds "
                          "are added, or the intervals are not valid")
    if spec.adaptive and spec.scheduler.type != "none":
        raise ConfigError(f"{path}: seeds: adaptive seeds compare finished trials; remove the "
                          f"'{spec.scheduler.type}' scheduler or give a fixed seed count")
    clash = sorted(set(spec.tuning_seed_list) & set(spec.max_seed_list))
    if clash:
        raise ConfigError(f"{path}: seeds: seed {clash[0]} is also a tuning seed (tuning seeds are "
                          f"0..{len(spec.tuning_seed_list) - 1}); give a count, or seeds from "
                          f"{len(spec.tuning_seed_list)} on")
    if spec.tuning and spec.tuning.epochs and "epochs" in (spec.grid or {}):
        raise ConfigError(f"{path}: tuning.epochs: the grid varies epochs; tune at each budget "
                          "(remove tuning.epochs)")


def load_spec(path: str | Path) -> Spec:
    """Parse and type-check a spec file (model validity is checked by :func:`expand`)."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a spec must be a YAML mapping with at least 'name', 'question' "
                          f"and 'grid' (got {type(raw).__name__})")
    spec = parse(Spec, raw, str(path))
    if spec.grid is not None and spec.configs is not None:
        raise ConfigError(f"{path}: give either 'grid' (a product) or 'configs' (a list), not both")
    grid = spec.grid if spec.grid is not None else {}
    for key, values in grid.items():
        if key not in GRID_FACTORS:
            raise ConfigError(f"{path}: grid.{key}: not a factor; vary one of {', '.join(GRID_FACTORS)}")
        if not values:
            raise ConfigError(f"{path}: grid.{key}: empty list; give at least one value or remove it")
    for i, c in enumerate(spec.configs or []):
        bad = sorted(set(c) - set(GRID_FACTORS))
        if bad:
            raise ConfigError(f"{path}: configs[{i}].{bad[0]}: not a factor; use {', '.join(GRID_FACTORS)}")
    if spec.configs is not None and not spec.configs:
        raise ConfigError(f"{path}: configs: empty list; give at least one configuration")
    from mixerlab.ladder_check import check_ladder

    check_ladder(spec, path)  # before any recipe is parsed: its one line, not pydantic's
    _check_nuisance(spec, path, grid)
    _check_stages(spec, path)
    if "data_dir" in spec.dataset and spec.dataset["data_dir"]:
        d = (path.parent / str(spec.dataset["data_dir"])).resolve()
        if not d.is_dir():
            raise ConfigError(f"{path}: dataset.data_dir: {d} is not a directory; fix the path "
                              "(relative paths are resolved from the spec's folder)")
        spec.dataset["data_dir"] = str(d)
    for key, model in (("dataset", DataConfig), ("train", TrainConfig), ("model", ModelConfig)):
        parse(model, getattr(spec, key), f"{path}: {key}")
    _check_workers(spec, path)
    if spec.claims:
        from mixerlab.claims.check import check_claims

        check_claims(spec, path)
    return spec


def _check_workers(spec: Spec, path: Path) -> None:
    """Loader workers count in a trial's CPUs (the rule: data/workers.py loader_workers)."""
    from mixerlab.data.workers import loader_workers

    try:
        loader_workers(spec.data_config().workers, spec.resources.cpu)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
