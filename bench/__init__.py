"""Benchmarks: commands that print numbers (``python -m bench.<name>``). Never timed assertions."""
