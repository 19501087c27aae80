"""Pictures from Prometheus: specs built by commands, drawn by matplotlib in a worker pool."""
