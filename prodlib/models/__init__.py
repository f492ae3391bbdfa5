"""Keras model builders: :mod:`prodlib.models.kim_cnn` (notebooks 02, 03) and :mod:`prodlib.models.image_cnn`
(notebook 04). Importing ``prodlib.models`` imports no Keras; each builder module does."""

__all__ = ["image_cnn", "kim_cnn"]
