import os

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
