-- ours: resolve one of 16 secrets whose refs are stored in a table
\set i random(1, 16)
SELECT paperclip.secret_resolve('00000000-0000-0000-0000-00000000b5c1', ref) FROM bench_secret_refs WHERE i = :i;
