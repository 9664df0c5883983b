-- Where content-addressed storage keeps each blob, and what integrity checks found.
--   cid                the content id an IPFS store gave the blob at commit (CIDv1); NULL in
--                      stores that address blobs by digest
--   verified_at        when the blob's stored bytes were last re-hashed and matched its digest
--   quarantined_at     set when they did not: the blob is not served until pushed again
--   quarantine_reason  what the check found
ALTER TABLE blobs ADD COLUMN cid TEXT;
ALTER TABLE blobs ADD COLUMN verified_at INTEGER;
ALTER TABLE blobs ADD COLUMN quarantined_at INTEGER;
ALTER TABLE blobs ADD COLUMN quarantine_reason TEXT;
-- The scrub verifies the least recently verified blobs first.
CREATE INDEX blobs_by_verification ON blobs(verified_at);
CREATE INDEX blobs_by_cid ON blobs(cid) WHERE cid IS NOT NULL;
