"""Storage: git repos (the source of truth) and the SQLite index beside them."""
