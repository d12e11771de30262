"""Topology: what calls what, answered from real traffic."""

__version__ = "0.1.0"
