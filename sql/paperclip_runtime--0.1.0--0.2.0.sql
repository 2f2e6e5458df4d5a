-- paperclip_runtime 0.1.0 -> 0.2.0
--
-- Every SQL change of 0.2.0 goes here as well as into sql/paperclip_runtime.sql
-- (the full install script of the current version).  After
-- ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0' the catalog must equal a
-- fresh CREATE EXTENSION of 0.2.0.  Sections are appended per change, each
-- headed by a comment saying what it is for.
\echo Use "ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0'" to load this file. \quit

-- Secret names and descriptions: bounded and free of control characters
-- (secret_create checks the same and says which; these hold for UPDATEs).
-- A 0.1.0 row breaking them makes the update fail naming the constraint:
-- rename the secret or shorten its description, then update again.
ALTER TABLE paperclip.company_secrets
    ADD CONSTRAINT company_secrets_name_check
        CHECK (char_length(name) BETWEEN 1 AND 255 AND name !~ '[\x01-\x1f\x7f]'),
    ADD CONSTRAINT company_secrets_description_check
        CHECK (char_length(description) <= 4096 AND description !~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]');
