"""Motion-guided sampling: schedule, guidance, windows, tiles, the plan and the loop."""
