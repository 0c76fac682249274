"""Memory: estimates per stage, fitting tiles to a budget, out-of-memory retry, host RAM."""
