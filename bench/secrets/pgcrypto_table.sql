-- baseline: pgcrypto's pgp_sym_decrypt of the same 16 values, stored in a table
\set i random(1, 16)
SELECT pgp_sym_decrypt(data, 'bench-passphrase-0123456789') FROM bench_pgp WHERE i = :i;
