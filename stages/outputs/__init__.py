"""What a file or batch run writes, committed as a set: video, keypoint formats, manifests,
datasets, the run's tables and its report."""
