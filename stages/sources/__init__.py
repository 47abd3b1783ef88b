"""Where frames come from: video and image files, batches of them, streams and cameras."""
