"""Data sets held whole on the training device, and the batched pipeline that feeds them."""

from mixerlab.data import cifar, idx, imagefolder, synthetic  # noqa: F401  (register sources)
from mixerlab.data.base import Dataset, RawSplits
from mixerlab.data.pipeline import DeviceLoader
from mixerlab.data.registry import list_datasets, load_dataset, register_dataset, register_source

__all__ = ["Dataset", "DeviceLoader", "RawSplits", "list_datasets", "load_dataset",
           "register_dataset", "register_source"]
