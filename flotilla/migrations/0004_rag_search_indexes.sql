-- Retrieval latency (make bench-rag): the full-text GIN index without a pending list. With fastupdate on,
-- new chunks wait in an unsorted list that every search scans linearly until (auto)vacuum merges it, so
-- search latency grows with each ingestion; chunks are written in batches, so direct index updates cost
-- little. The list left by earlier writes is merged now.
ALTER INDEX rag_chunks_tsv_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('rag_chunks_tsv_idx'::regclass);
