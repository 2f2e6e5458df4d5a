-- test/setup.sql — included by every pgTAP file: TAP-only output
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_STOP true
SET client_min_messages = warning;
SET search_path = public, paperclip;
