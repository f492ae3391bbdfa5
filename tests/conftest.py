"""Shared test set-up: a headless matplotlib backend and quiet TensorFlow logs."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
