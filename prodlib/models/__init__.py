"""Keras model builders: :mod:`prodlib.models.kim_cnn` (title and description classifiers, notebooks 02 and 03).

Kept light on purpose: importing ``prodlib.models`` imports no Keras; each builder module does.
"""

__all__ = ["kim_cnn"]
