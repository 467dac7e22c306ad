"""Search: FTS5 query building, embeddings, the vector index, hybrid fusion, duplicates, gaps."""
