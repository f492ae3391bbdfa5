"""prodlib: the helper package of the multimodal product-classification study.

Each module does one stage's mechanics; the notebooks in ``notebooks/`` tell the story. Importing
``prodlib`` is light: no TensorFlow, Keras or JAX is imported until a model is built.
"""

__version__ = "0.1.0"
