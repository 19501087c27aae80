"""The console script's exit codes: 0 ok, 1 failed or found problems, 2 usage error."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
