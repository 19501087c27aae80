"""What forge says: typed cells, units and trends, and the one redaction of secrets."""
