"""Keras subclasses made on first use, so that importing a prodlib module imports no Keras (and so no
TensorFlow). Used by :mod:`prodlib.images` (``ImageSequence``) and :mod:`prodlib.train` (``MicroF1Callback``).
"""

from __future__ import annotations

import functools
import operator


@functools.cache
def keras_subclass(name: str, mixin: type, base: str, module: str) -> type:
    """The class ``name`` deriving from ``mixin`` and the Keras class at ``base`` (e.g. ``"utils.PyDataset"``),
    created once and reported as defined in ``module``."""
    import keras

    return type(name, (mixin, operator.attrgetter(base)(keras)), {"__doc__": mixin.__doc__, "__module__": module})
