"""Ways to run a trial (precision, layout, attention kernel): chosen, recorded, kept per study.

Unit tests on synthetic data; the sweep's use of them is checked on real Ray in test_sweep.
"""

from __future__ import annotations

import json

import pytest
import torch

from mixerlab.checkpoint import config_hash
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig, parse
from mixerlab.data import load_dataset
from mixerlab.errors import ConfigError
from mixerlab.execution import Execution, ExecutionPins
from mixerlab.execution_choice import bf16_cleared, candidates, choose, supports_bf16
from mixerlab.models import create_model
from mixerlab.models.mixers import get_mixer, list_mixers
from mixerlab.sweep import execution_plan
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Trial
from mixerlab.train import train

CPU = torch.device("cpu")
SYNTH = DataConfig(name="synthetic", synthetic_size=256)


def model(mixer="conv", **kw) -> ModelConfig:
    return ModelConfig(mixer=mixer, patch_size=4, depth=1, width=16, image_size=28, in_chans=1,
                       num_classes=10, **kw)


def trial(seed=0, mixer="conv", batch=32, execution=None, **train_kw) -> Trial:
    t = TrainConfig(epochs=1, batch_size=batch, threads=1, execution=execution, **train_kw)
    cfg = TrialConfig(model=model(mixer), data=SYNTH, train=t, seed=seed)
    return Trial(config_hash(cfg), cfg)


def test_candidates_follow_the_registry_and_the_pins():
    labels = lambda ms: [e.label for e in ms]  # noqa: E731
    conv = candidates(model("conv"), ExecutionPins(), CPU)
    assert labels(conv)[0] == "fp32 channels_last"  # fp32 first: a tie keeps it
    assert {e.precision for e in conv} == ({"fp32", "bf16"} if supports_bf16(CPU) and bf16_cleared(model())
                                           else {"fp32"})
    att = candidates(model("attention", heads=2), ExecutionPins(), CPU)
    assert {e.attention_kernel for e in att} == {"fused", "plain"}  # only attention has kernels
    assert {e.attention_kernel for e in conv} == {"fused"}
    ref = candidates(ModelConfig(model="resnet18", image_size=28, in_chans=1, num_classes=10),
                     ExecutionPins(), CPU)
    assert {e.precision for e in ref} == {"fp32"}  # a reference architecture was never cleared
    for name in list_mixers():  # every uncleared mixer stays fp32 under "auto"
        if not get_mixer(name).bf16:
            assert {e.precision for e in candidates(model(name), ExecutionPins(), CPU)} == {"fp32"}
    pinned = candidates(model("attention", heads=2), ExecutionPins(
        precision="bf16", memory_format="contiguous", attention_kernel="plain"), CPU)
    assert [(e.label, e.how) for e in pinned] == [("bf16 nchw plain", "pinned")]


def test_choose_times_every_candidate_and_keeps_the_fastest():
    way, rates = choose(model("attention", heads=2), 16, ExecutionPins(precision="fp32"), CPU, time_s=0.05)
    assert set(rates) == {e.label for e in candidates(model("attention", heads=2),
                                                      ExecutionPins(precision="fp32"), CPU)}
    assert all(r > 0 for r in rates.values())
    assert rates[way.label] == max(rates.values()) and way.how == "measured"


def test_prepare_sets_the_kernel_and_layout_and_leaves_the_function_alone():
    torch.manual_seed(0)
    m = create_model(model("attention", heads=2)).eval()
    x = torch.randn(4, 1, 28, 28)
    ref = m(x)
    plain = Execution(channels_last=False, attention_kernel="plain").prepare(m)
    assert all(mod.kernel == "plain" for mod in plain.modules() if hasattr(mod, "kernel"))
    assert torch.allclose(plain(x), ref, atol=1e-5)
    Execution(channels_last=True).prepare(m)
    conv_w = next(p for p in m.parameters() if p.dim() == 4)
    assert conv_w.is_contiguous(memory_format=torch.channels_last)


def test_the_way_is_not_part_of_the_trial_id_and_is_recorded():
    plain, bf16 = trial(), trial(execution=Execution(precision="bf16", how="measured"))
    assert plain.trial_id == bf16.trial_id  # how, not what
    data = load_dataset(SYNTH)
    legacy = train(plain.config, data=data)
    assert "precision" not in legacy  # records of the earlier kind keep their columns
    rec = train(bf16.config, data=data)
    assert (rec["precision"], rec["execution"], rec["attention_kernel"]) == ("bf16", "measured", "fused")
    assert rec["status"] == "ok" and 0 <= rec["test_acc"] <= 100
    again = train(bf16.config, data=data)
    assert again["test_acc"] == rec["test_acc"]  # bf16 on CPU is deterministic too


def test_a_bad_pin_is_one_clear_line():
    with pytest.raises(ConfigError, match=r"'precision'.*fp16"):
        parse(ExecutionPins, {"precision": "fp16"}, "execution")


def test_assign_sets_each_configurations_way_and_times_inference_once():
    trials = [trial(seed=s) for s in (0, 1, 2)] + [trial(seed=0, batch=64)]
    ways = {"legacy": False, "ways": {
        execution_plan.key(trials[0]): {"execution": Execution(precision="bf16", how="measured").model_dump()},
        execution_plan.key(trials[3]): {"execution": Execution(channels_last=False, how="measured").model_dump()},
    }}
    assert execution_plan.key(trials[0]) == execution_plan.key(trials[2])  # seeds share a way
    out = execution_plan.assign(trials, ways, first_seed=0)
    assert [t.config.train.execution.label for t in out] == ["bf16 channels_last"] * 3 + ["fp32 nchw"]
    assert [t.config.train.measure_throughput for t in out] == [True, False, False, True]
    assert [t.trial_id for t in out] == [t.trial_id for t in trials]
    assert execution_plan.assign(trials, {"legacy": True, "ways": {}}, 0) == trials


def test_a_study_that_ran_before_ways_were_chosen_keeps_running_as_it_did(tmp_path):
    study = Study(tmp_path / "old")
    study.records_dir.mkdir(parents=True)
    rec = {"trial_id": "abc", "status": "ok", "test_acc": 80.0}
    (study.records_dir / "abc.json").write_text(json.dumps(rec))
    timed = []
    saved = execution_plan.ensure(study, [trial()], ExecutionPins(), lambda ts: timed.append(ts) or {})
    assert saved["legacy"] and not timed  # nothing timed, nothing changed
    assert json.loads((study.path / execution_plan.FILE).read_text())["legacy"] is True

    fresh = Study(tmp_path / "new")
    fresh.path.mkdir()
    ts = [trial(seed=0), trial(seed=1)]
    saved = execution_plan.ensure(fresh, ts, ExecutionPins(precision="fp32"),
                                  lambda missing: execution_plan.measure(missing, ExecutionPins(precision="fp32"),
                                                                         "cpu", 1))
    assert not saved["legacy"] and len(saved["ways"]) == 1  # two seeds, one configuration
    again = execution_plan.ensure(fresh, ts, ExecutionPins(), lambda missing: pytest.fail("timed twice"))
    assert again == saved  # a resumed study reads its ways, never re-times them


def test_trials_start_longest_first_and_ties_keep_the_plan_order():
    from mixerlab.sweep.runner import _longest_first, _total

    ts = [trial(seed=s) for s in range(4)]
    est = {ts[0].trial_id: 10.0, ts[1].trial_id: 30.0, ts[2].trial_id: 10.0, ts[3].trial_id: 20.0}
    assert [t.config.seed for t in _longest_first(ts, est)] == [1, 3, 0, 2]
    assert _total(est, ts) == 70.0
    est[ts[2].trial_id] = float("nan")  # a configuration that could not be timed: plan order
    assert _longest_first(ts, est) == ts and _total(est, ts) is None
    assert _longest_first(ts, None) == ts


def test_time_in_turns_runs_rounds_in_turns_and_drops_the_slow_from_a_race():
    """The one timing loop of choose() and the benchmarks: warm-up untimed, then each step in
    turn every round; with drop_at a step far slower than the best stops being timed."""
    import time

    from mixerlab.measure import time_in_turns

    order = []

    def step(name, cost):
        def run():
            order.append(name)
            time.sleep(cost)
        return run

    fast, slow = step("fast", 0.001), step("slow", 0.05)
    times = time_in_turns([fast, slow], torch.device("cpu"), rounds=2, block=2, warmup=1)
    assert [len(t) for t in times] == [2, 2]
    assert order == ["fast", "slow"] + ["fast", "fast", "slow", "slow"] * 2  # warm-up, then turns
    assert times[1][0] > times[0][0]
    order.clear()
    times = time_in_turns([fast, slow], torch.device("cpu"), rounds=3, drop_at=1.5)
    assert [len(t) for t in times] == [3, 1]  # the slow step left after its first round


def test_prepare_sets_the_kernel_only_on_modules_that_declare_it_a_choice():
    """Execution.prepare sets ``kernel`` on attention (it declares KERNELS), never on another
    module that merely has an attribute of that name (e.g. a conv's kernel size)."""

    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.kernel = 9  # a kernel size, not a choice of implementation

    net = torch.nn.Sequential(create_model(model("attention", heads=2)), Other())
    Execution(attention_kernel="plain", channels_last=False).prepare(net)
    kernels = [m.kernel for m in net.modules() if hasattr(m, "kernel")]
    assert kernels[-1] == 9  # untouched
    assert kernels[:-1] and set(kernels[:-1]) == {"plain"}
