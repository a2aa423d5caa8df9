"""The DAGs (cover_song), the root config and the command line."""
