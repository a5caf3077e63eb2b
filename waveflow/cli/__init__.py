"""The ``waveflow`` command line (:func:`main`)."""

from .main import get_parser, main

__all__ = ["get_parser", "main"]
