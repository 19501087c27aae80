-- The environment a destructive request was made in; it runs only in that same environment.
ALTER TABLE forge.approvals ADD COLUMN environment text;
