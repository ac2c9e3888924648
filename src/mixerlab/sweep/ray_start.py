"""The driver's Ray for one study: join the ``--address`` cluster or start mixerlab's own.

Connecting to an existing cluster, and every check of its address, is
:mod:`mixerlab.sweep.connect`; this module takes that connection (or makes a local Ray),
sends Ray's and Tune's own chatter to ``<study>/logs/ray.log`` instead of the terminal, and
checks that every node of a cluster sees the study folder.
"""

from __future__ import annotations

import logging
import os

from mixerlab.errors import ConfigError
from mixerlab.sweep.study import Study

RAY_LOGGERS = ("ray", "ray.tune", "ray.train")


def _route(handler: logging.Handler) -> None:
    """Ray's and Tune's loggers write to ``handler`` only."""
    for name in RAY_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False


def start_ray(address: str | None, study: Study) -> None:
    """Reuse the connection run_sweep made (``--address``), else start mixerlab's own Ray."""
    from mixerlab.sweep import connect

    study.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(study.logs_dir / "ray.log")
    _route(handler)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    live = connect.current()
    if address and live is None:  # run_sweep connects first; this is for other callers
        live = connect.connect(address)
    if live is not None:
        if live.log:  # what Ray said while connecting, before the study folder existed
            with open(study.logs_dir / "ray.log", "a") as f:
                f.write(live.log)
            live.log = ""
        return
    _start_local(handler)


def _start_local(handler: logging.Handler) -> None:
    """A new Ray of our own on this machine, with every core.

    address="local": without it ray.init attaches to any Ray it finds (a `ray start` head, or
    the stale address a dead one left in /tmp/ray/ray_current_cluster) and then refuses
    num_cpus. ray.init(configure_logging=False) clears the "ray" logger's handlers first, and
    what it logs then (e.g. "Token authentication is enabled") would reach the terminal
    through logging's last resort: catch it one level down, under ray._private, meanwhile.
    """
    import ray

    init_logger = logging.getLogger("ray._private")
    init_logger.addHandler(handler)
    try:
        ray.init(address="local", num_cpus=os.cpu_count(), log_to_driver=False,
                 include_dashboard=False, configure_logging=False, logging_level=logging.WARNING)
    finally:
        init_logger.removeHandler(handler)
        _route(handler)


def check_shared_storage(study: Study) -> None:
    """On a cluster every node must see the results folder (trial checkpoints live there)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = study.path / ".storage-probe"
    probe.write_text(str(os.getpid()))

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path) and os.access(os.path.dirname(path), os.W_OK)

    nodes = [n for n in ray.nodes() if n["Alive"]]
    checks = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
              .remote(str(probe.resolve())) for n in nodes]
    blind = [n["NodeManagerAddress"] for n, ok in zip(nodes, ray.get(checks, timeout=60)) if not ok]
    probe.unlink(missing_ok=True)
    if blind:
        raise ConfigError(f"--results {study.path.resolve()}: not reachable (or not writable) from "
                          f"node(s) {', '.join(blind)}; on a cluster use a folder every node mounts "
                          "at the same path (e.g. NFS)")
