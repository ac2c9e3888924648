"""User plugins: modules named in ``$MIXERLAB_PLUGINS`` (comma-separated) are imported once.

A plugin registers its own token mixers, reference architectures or data sets with the
usual decorators, so a researcher can sweep a new mixer without forking mixerlab. Ray
workers inherit the variable, so the plugin is registered in every trial process too.
"""

from __future__ import annotations

import importlib
import os

from mixerlab.errors import ConfigError

_loaded: set[str] = set()


def load_plugins() -> None:
    for name in filter(None, (n.strip() for n in os.environ.get("MIXERLAB_PLUGINS", "").split(","))):
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"MIXERLAB_PLUGINS: cannot import '{name}' ({err}); put it on "
                              "PYTHONPATH or remove it from MIXERLAB_PLUGINS") from None
        _loaded.add(name)
