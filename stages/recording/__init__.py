"""What a live run writes: crash-safe segments, raw packets, the live log, retention."""
