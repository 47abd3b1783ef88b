"""The runs: engine planning, the one pipeline builder, and file, batch, live and cluster jobs."""
