-- A job's log (the `bull:<queue>:<id>:logs` list that job.log() appends to) is deleted with the
-- job, so `dlq clear` archives it too: MessagePack [lines in all, the newest 100 lines], NULL for
-- a job that logged nothing.
ALTER TABLE forge.job_archive ADD COLUMN log bytea COMPRESSION lz4;
