"""Why a series cannot be de-identified: messages name images and tags, never values."""

from __future__ import annotations


class DeidError(ValueError):
    """The series cannot be de-identified. Messages name tags and images, never values."""


class BurnedInAnnotationError(DeidError):
    """An image says its pixels carry burned-in annotation: nothing is de-identified."""
