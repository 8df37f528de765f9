"""Sandboxes for synthesized code (bubblewrap, docker, subprocess): see issue #4."""

__all__: list[str] = []
