"""Benchmarks: environments the agent is evaluated on (``benchmarks.envs``), the harness
around them (``benchmarks.harness``) and scripts that print speed figures.

Nothing is imported here, so that importing a submodule (e.g. from the CLI) does not load
every environment family.
"""
