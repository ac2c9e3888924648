"""Decode every image once before it is packed, so a corrupt file fails ``mixerlab shards``
and not a trial mid-study.

Why: ``mixerlab shards`` copies each image's bytes into the tar shards without decoding
them. A corrupt image (a text file named ``0.jpg``, a truncated JPEG) was therefore packed
silently, and found only when a trial's loader decoded it, stopping that trial
(:class:`~mixerlab.data.stream.CorruptImage`) after it had spent its compute. The check
decodes each file with the loader's own :func:`~mixerlab.data.stream.decode` (PIL: open,
then a full ``convert``), so a file that passes decodes at train time, and every file that
fails is named at once, before anything is written.

Work is spread over worker processes a chunk of files at a time (one task per file would
spend more on inter-process messages than on decoding small images).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mixerlab.errors import ConfigError

CHUNK = 256  # files per task at most: ~0.1-1 s of decoding, so progress moves and messages are few
MAX_DEFAULT_WORKERS = 8  # past ~8 processes, reading the files, not decoding, is the bound


def default_workers() -> int:
    """The CPUs this process may use (Slurm's and taskset's limits included), at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def _reason(err: Exception) -> str:
    """The decoder's short reason (PIL's "cannot identify" names a BytesIO, not the file)."""
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return "not an image PIL can identify"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _check_chunk(files: list[str]) -> list[tuple[str, str]]:
    """(file, reason) for each of ``files`` the loader could not decode. Runs in a worker.

    The loader decodes to "L" or "RGB" (chosen at train time); either is a full decode."""
    from mixerlab.data.stream import decode

    bad = []
    for f in files:
        try:
            decode(Path(f).read_bytes(), "RGB")
        except Exception as err:  # noqa: BLE001 - whatever decode raises would stop a trial too
            bad.append((f, _reason(err)))
    return bad


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent (else each prints its own traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _results(chunks: list[list[str]], workers: int) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(files in the chunk, its failures) as each chunk finishes; in this process for 1 worker."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield len(chunk), _check_chunk(chunk)
        return
    with ProcessPoolExecutor(min(workers, len(chunks)), initializer=_ignore_sigint) as pool:
        futures = {pool.submit(_check_chunk, chunk): len(chunk) for chunk in chunks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def check_images(files: list[Path], workers: int,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """Decode each of ``files`` once, in ``workers`` processes; return (file, reason) for
    each that fails, in ``files``' order. ``progress(checked, total)`` after each chunk."""
    names = [str(f) for f in files]
    size = max(1, min(CHUNK, -(-len(names) // (4 * workers))))  # >= 4 chunks a worker: balance
    chunks = [names[i:i + size] for i in range(0, len(names), size)]
    bad, done = [], 0
    try:
        for n, failed in _results(chunks, workers):
            bad += failed
            done += n
            if progress:
                progress(done, len(names))
    except BrokenProcessPool:
        raise ConfigError("a worker process died while checking the images (out of memory, or "
                          "the image decoder crashed); re-run with fewer --workers, or pass "
                          "--no-check for trusted data") from None
    order = {name: i for i, name in enumerate(names)}
    return sorted(bad, key=lambda b: order[b[0]])
