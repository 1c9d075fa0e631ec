"""Document ingest: files -> document rows (id, text, source, meta, page, kind) + quarantine."""
