"""Keras model builders: :mod:`prodlib.models.kim_cnn` (notebooks 02, 03) and :mod:`prodlib.models.resnet`
(notebook 04). Importing ``prodlib.models`` imports no Keras; each builder module does."""

__all__ = ["kim_cnn"]
