"""The part of the engine that ships to students: notebook extraction and the public checks."""

from .check import check

__all__ = ["check"]
