-- paperclip_runtime 0.1.0 -> 0.2.0
--
-- Every SQL change of 0.2.0 goes here as well as into sql/paperclip_runtime.sql
-- (the full install script of the current version).  After
-- ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0' the catalog must equal a
-- fresh CREATE EXTENSION of 0.2.0.  Sections are appended per change, each
-- headed by a comment saying what it is for.
\echo Use "ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0'" to load this file. \quit
