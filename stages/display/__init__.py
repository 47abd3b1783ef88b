"""What a person at the machine sees: progress, the live dashboard, the local window."""
