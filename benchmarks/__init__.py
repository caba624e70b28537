"""Repeatable measurements of this project (``python -m benchmarks.speed``)."""
