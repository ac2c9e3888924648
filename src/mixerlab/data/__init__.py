"""Data sets held whole in memory, and the batched pipeline that feeds them to the device;
beside them the streamed path for sets too large to hold (``stream``, ``stream_loader``).

``load_dataset(DataConfig) -> Dataset`` reads and splits a registered data set;
``DeviceLoader`` (or ``make_loaders``) turns it into augmented, normalised batches.
``open_data(DataConfig)`` picks the path (``data/path.py``) and opens the data set on it.
"""

from mixerlab.data import cifar, idx, imagefolder, stream_sources, synthetic  # noqa: F401  (register sources)
from mixerlab.data.base import Dataset, RawSplits, pixel_stats
from mixerlab.data.path import open_data
from mixerlab.data.pipeline import DeviceLoader, make_loaders
from mixerlab.data.registry import (
           list_datasets,
           load_dataset,
           register_dataset,
           resized,
           split_for_seed,
)

__all__ = ["Dataset", "DeviceLoader", "RawSplits", "list_datasets", "load_dataset",
           "make_loaders", "open_data", "pixel_stats", "register_dataset", "resized", "split_for_seed"]
