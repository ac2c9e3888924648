"""mixerlab: are patches all you need? Experiments instead of opinions."""

__version__ = "0.1.0"
