"""The `secmon` command line."""
