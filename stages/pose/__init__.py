"""The per-frame pose steps: resize, the network call, maps to people, tracking, drawing."""
