"""Domain steps of the pose stream: decode, resize, inference, render, sinks."""
