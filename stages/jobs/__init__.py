"""The runs: the one pipeline builder, file, batch, live and cluster jobs."""
