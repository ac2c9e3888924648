import os
import subprocess
import sys

import pytest
import torch

# Tests run on CPU with few threads: deterministic and kind to a 2-core machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def run_cli(capsys):
    """Run ``mixerlab ARGS`` in-process; return (exit code, stdout, stderr)."""
    from mixerlab.cli import main

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def alive_nodes(address: str, env: dict) -> int:
    """How many nodes of the Ray cluster at ``address`` are alive (0 if it cannot be reached).

    ``ray start --address`` can return before the head lists the new node; a sweep started
    then sizes its concurrency from one node's CPUs.
    """
    code = ("import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                         env=env, timeout=60)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0
