"""Errors that the CLI turns into one-line messages (never a traceback)."""

from __future__ import annotations


class EdgeWBCError(Exception):
    """Base class: a problem with the user's input that has a clear message."""


class DataError(EdgeWBCError):
    """Missing, malformed or inconsistent data (exit code 2 at the CLI)."""


class ImageError(EdgeWBCError):
    """One image file cannot be used (truncated, not an image, too large ...)."""


class ModelError(EdgeWBCError):
    """A model file or its model.json is missing, corrupt or inconsistent."""


class SpecError(EdgeWBCError):
    """A ModelSpec value is invalid."""
