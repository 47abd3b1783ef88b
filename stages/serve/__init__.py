"""Loopback HTTP: the status routes, metrics, Server-Sent Events and the preview page."""
