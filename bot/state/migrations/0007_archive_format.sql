-- Archived job hashes are now Redis's own DUMP payloads on Redis 7+ (`rdb`: serialised in C, LZF-compressed, with a
-- CRC-64), read back by bot/rdb.py; rows from before, and from Redis 6, keep the MessagePack field list.
ALTER TABLE forge.job_archive ADD COLUMN format text NOT NULL DEFAULT 'msgpack' CHECK (format IN ('msgpack', 'rdb'));
