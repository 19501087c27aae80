-- The extensions ClientForge uses, and a database for forge's own state.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE DATABASE forge OWNER crm;
