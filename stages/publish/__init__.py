"""Live keypoints and source states for other programs: the feed, MQTT, per-source monitors."""
