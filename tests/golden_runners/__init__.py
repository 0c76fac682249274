"""One module per fixture kind; each exposes ``run(fixture) -> list[golden_lib.Check]``.

Runners call the pack's public code (loader, models, pipeline) exactly as users' code paths do.
"""
