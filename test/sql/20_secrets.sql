\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(134);

SELECT current_setting('paperclip.master_key_file') AS keyfile \gset

-- helpers: a ref to a secret by name (in the session's company, else c1); the SQLSTATE (or first value) of a query run as a role
CREATE FUNCTION pg_temp.ref(secret_name text, version jsonb DEFAULT '"latest"') RETURNS jsonb
LANGUAGE sql AS $$
  SELECT jsonb_build_object('type', 'secret_ref', 'secretId', s.id, 'version', version)
    FROM paperclip.company_secrets AS s
   WHERE s.name = secret_name
     AND s.company_id = coalesce(nullif(current_setting('paperclip.company_id', true), '')::uuid,
                                 '00000000-0000-0000-0000-0000000000c1')
$$;
-- "SQLSTATE: message" of a query run as a role (or "no error")
CREATE FUNCTION pg_temp.error_as(role_name text, company text, query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text := 'no error';
BEGIN
  PERFORM set_config('paperclip.company_id', coalesce(company, ''), true);
  EXECUTE format('SET LOCAL ROLE %I', role_name);
  BEGIN
    EXECUTE query;
  EXCEPTION WHEN OTHERS THEN
    result := SQLSTATE || ': ' || SQLERRM;
  END;
  RESET ROLE;
  PERFORM set_config('paperclip.company_id', '', true);
  RETURN result;
END
$$;
CREATE FUNCTION pg_temp.run_as(role_name text, company text, query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text;
BEGIN
  PERFORM set_config('paperclip.company_id', coalesce(company, ''), true);
  EXECUTE format('SET LOCAL ROLE %I', role_name);
  BEGIN
    EXECUTE query INTO result;
  EXCEPTION WHEN OTHERS THEN
    result := 'ERROR ' || SQLSTATE;
  END;
  RESET ROLE;
  PERFORM set_config('paperclip.company_id', '', true);
  RETURN result;
END
$$;

-- ------------------------------------------------------------ the SQL surface
SELECT has_function('paperclip', 'secret_create', ARRAY['uuid', 'text', 'text', 'text'],
                    'secret_create(uuid, text, text, text) exists');
SELECT function_returns('paperclip', 'secret_create', ARRAY['uuid', 'text', 'text', 'text'], 'company_secrets',
                        'secret_create returns company_secrets');
SELECT has_function('paperclip', 'secret_rotate', ARRAY['uuid', 'text'], 'secret_rotate(uuid, text) exists');
SELECT function_returns('paperclip', 'secret_rotate', ARRAY['uuid', 'text'], 'company_secrets',
                        'secret_rotate returns company_secrets');
SELECT has_function('paperclip', 'secret_resolve', ARRAY['uuid', 'jsonb'], 'secret_resolve(uuid, jsonb) exists');
SELECT function_returns('paperclip', 'secret_resolve', ARRAY['uuid', 'jsonb'], 'text', 'secret_resolve returns text');
SELECT has_function('paperclip', 'secret_revoke', ARRAY['uuid', 'integer'], 'secret_revoke(uuid, integer) exists');
SELECT has_function('paperclip', 'secret_reencrypt_all', ARRAY[]::text[], 'secret_reencrypt_all() exists');
SELECT function_returns('paperclip', 'secret_reencrypt_all', ARRAY[]::text[], 'integer',
                        'secret_reencrypt_all returns integer');
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = 'paperclip.secret_create(uuid,text,text,text)'::regprocedure),
          1::int2, 'secret_create has one defaulted argument (description)');

-- ------------------------------------------------------------ privileges
SELECT ok(NOT has_function_privilege('public', 'paperclip.secret_resolve(uuid,jsonb)', 'EXECUTE'),
          'PUBLIC cannot execute secret_resolve');
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE pronamespace = 'paperclip'::regnamespace AND proname LIKE 'secret%'
              AND has_function_privilege('public', oid, 'EXECUTE')),
          0, 'PUBLIC can execute no secret function');
SELECT ok(NOT has_any_column_privilege('public', 'paperclip.company_secrets', 'SELECT'),
          'PUBLIC cannot read company_secrets');
SELECT ok(NOT has_any_column_privilege('public', 'paperclip.company_secret_versions', 'SELECT'),
          'PUBLIC cannot read company_secret_versions');
SELECT ok(NOT has_function_privilege('paperclip_agent', 'paperclip.secret_resolve(uuid,jsonb)', 'EXECUTE'),
          'paperclip_agent cannot execute secret_resolve');
SELECT ok(NOT has_column_privilege('paperclip_admin', 'paperclip.company_secret_versions', 'material', 'SELECT'),
          'paperclip_admin cannot read the material column');
SELECT ok(NOT has_function_privilege('paperclip_admin', 'paperclip.secret_reencrypt_all()', 'EXECUTE'),
          'paperclip_admin cannot re-encrypt every company''s secrets');
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE pronamespace = 'paperclip'::regnamespace AND prosecdef
              AND NOT coalesce(array_to_string(proconfig, ',') ~ 'search_path=pg_catalog, pg_temp', false)),
          0, 'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is((SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc
            WHERE pronamespace = 'paperclip'::regnamespace AND proname LIKE 'secret%' AND prosecdef),
          ARRAY['secret_create', 'secret_revoke', 'secret_rotate'], 'the writing secret functions are SECURITY DEFINER');

-- ------------------------------------------------------------ create and resolve
CREATE TEMP TABLE created AS
  SELECT * FROM paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'deploy-key', 'v1-alpha-7Qx', 'the deploy key');
SELECT is((SELECT name FROM created), 'deploy-key', 'create: returns the secret row');
SELECT is((SELECT company_id FROM created), '00000000-0000-0000-0000-0000000000c1'::uuid, 'create: row has the company');
SELECT is((SELECT provider FROM created), 'local_encrypted', 'create: provider is local_encrypted');
SELECT is((SELECT latest_version FROM created), 1, 'create: latest_version is 1');
SELECT is((SELECT description FROM created), 'the deploy key', 'create: description is stored');
SELECT is((SELECT count(*)::int FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)), 1,
          'create: one version row');
SELECT is((SELECT version FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)), 1,
          'create: the version is 1');
SELECT matches((SELECT key_id FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)),
               '^[0-9a-f]{16}$', 'create: the version records a key id');
SELECT is((SELECT array_agg(k ORDER BY k) FROM paperclip.company_secret_versions v, jsonb_object_keys(v.material) k
            WHERE v.secret_id = (SELECT id FROM created)),
          ARRAY['alg', 'ciphertext', 'nonce'], 'create: material holds only alg, nonce and ciphertext');
SELECT is((SELECT material->>'alg' FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)),
          'xchacha20poly1305-ietf', 'create: material names the AEAD');
SELECT is((SELECT length(decode(material->>'nonce', 'base64')) FROM paperclip.company_secret_versions
            WHERE secret_id = (SELECT id FROM created)), 24, 'create: the nonce is 24 bytes (XChaCha20)');
SELECT ok((SELECT position('v1-alpha-7Qx' IN v::text) = 0 FROM paperclip.company_secret_versions AS v
            WHERE v.secret_id = (SELECT id FROM created)), 'create: the version row does not contain the value');
SELECT matches((SELECT value_fingerprint FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)),
               '^[0-9a-f]{64}$', 'create: value_fingerprint is a 256-bit hex digest');
SELECT ok((SELECT value_fingerprint NOT IN (encode(sha256(convert_to('v1-alpha-7Qx', 'UTF8')), 'hex'), md5('v1-alpha-7Qx'))
             FROM paperclip.company_secret_versions WHERE secret_id = (SELECT id FROM created)),
          'create: value_fingerprint is not a bare hash of the value');

SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v1-alpha-7Qx', 'resolve: latest round-trips the value');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key', '1')),
          'v1-alpha-7Qx', 'resolve: version 1 round-trips the value');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key') - 'version'),
          'v1-alpha-7Qx', 'resolve: a ref without version means latest');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key', 'null')),
          'v1-alpha-7Qx', 'resolve: version null means latest');

SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'empty', '')).latest_version, 1,
          'create: an empty value is accepted');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('empty')), '',
          'resolve: the empty value round-trips');
SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'unicode', 'schlüssel ✓ 鍵')).name, 'unicode',
          'create: a multibyte value is accepted');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('unicode')), 'schlüssel ✓ 鍵',
          'resolve: the multibyte value round-trips');
SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'long', repeat('0123456789abcdef', 8192))).name,
          'long', 'create: a 128 kB value is accepted');
SELECT is(md5(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('long'))),
          md5(repeat('0123456789abcdef', 8192)), 'resolve: the 128 kB value round-trips');
SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c2', 'deploy-key', 'other-company-value')).name,
          'deploy-key', 'create: another company may use the same name');

-- ------------------------------------------------------------ rotate and versions
SELECT is((paperclip.secret_rotate((SELECT id FROM created), 'v2-beta-8Ry')).latest_version, 2,
          'rotate: returns latest_version 2');
SELECT is((paperclip.secret_rotate((SELECT id FROM created), 'v3-gamma-9Sz')).latest_version, 3,
          'rotate: a second rotation returns latest_version 3');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v3-gamma-9Sz', 'rotate: latest resolves to the newest value');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key', '1')),
          'v1-alpha-7Qx', 'rotate: version 1 keeps its value');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key', '2')),
          'v2-beta-8Ry', 'rotate: version 2 has its value');
SELECT is((SELECT array_agg(version ORDER BY version) FROM paperclip.company_secret_versions
            WHERE secret_id = (SELECT id FROM created)), ARRAY[1, 2, 3], 'rotate: versions 1, 2 and 3 are stored');

SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'twin', 'same-value')).name, 'twin',
          'create: twin secret');
SELECT is((paperclip.secret_rotate((SELECT id FROM paperclip.company_secrets WHERE name = 'twin'), 'same-value')).latest_version,
          2, 'rotate: twin gets the same value again');
SELECT is((SELECT count(DISTINCT material->>'nonce')::int FROM paperclip.company_secret_versions v
             JOIN paperclip.company_secrets s ON s.id = v.secret_id WHERE s.name = 'twin'),
          2, 'the same value gets a fresh nonce per version');
SELECT is((SELECT count(DISTINCT material->>'ciphertext')::int FROM paperclip.company_secret_versions v
             JOIN paperclip.company_secrets s ON s.id = v.secret_id WHERE s.name = 'twin'),
          2, 'the same value gets a different ciphertext per version');
SELECT is((SELECT count(DISTINCT value_fingerprint)::int FROM paperclip.company_secret_versions v
             JOIN paperclip.company_secrets s ON s.id = v.secret_id WHERE s.name = 'twin'),
          1, 'the same value keeps the same fingerprint');

-- ------------------------------------------------------------ revoke
SELECT is((paperclip.secret_revoke((SELECT id FROM created), 3)).latest_version, 3,
          'revoke: returns the secret row');
SELECT ok((SELECT revoked_at IS NOT NULL FROM paperclip.company_secret_versions
            WHERE secret_id = (SELECT id FROM created) AND version = 3), 'revoke: revoked_at is set');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v2-beta-8Ry', 'revoke: latest skips the revoked version');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key', '3'))$$,
                 '55000', 'version 3 of secret "deploy-key" is revoked', 'revoke: the revoked version itself → 55000');
SELECT is((paperclip.secret_revoke((SELECT id FROM created), 3)).name, 'deploy-key', 'revoke: revoking again is harmless');
SELECT is((paperclip.secret_revoke((SELECT id FROM created), 2)).name, 'deploy-key', 'revoke: version 2');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v1-alpha-7Qx', 'revoke: latest falls back to version 1');
SELECT is((paperclip.secret_revoke((SELECT id FROM created), 1)).name, 'deploy-key', 'revoke: version 1');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$,
                 '55000', 'secret "deploy-key" has no version that is not revoked',
                 'revoke: latest with every version revoked → 55000');
SELECT is((paperclip.secret_rotate((SELECT id FROM created), 'v4-delta-0Ta')).latest_version, 4,
          'rotate after revoking everything: version 4');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v4-delta-0Ta', 'latest resolves to the new version');
SELECT throws_ok(format('SELECT paperclip.secret_revoke(%L, 99)', (SELECT id FROM created)),
                 '42704', 'secret "deploy-key" has no version 99', 'revoke: unknown version → 42704');
SELECT throws_ok($$SELECT paperclip.secret_revoke('00000000-0000-0000-0000-00000000dead', 1)$$,
                 '42704', 'secret 00000000-0000-0000-0000-00000000dead does not exist', 'revoke: unknown secret → 42704');
SELECT throws_ok(format('SELECT paperclip.secret_revoke(%L, 0)', (SELECT id FROM created)),
                 '22023', 'version must be a positive integer', 'revoke: version 0 → 22023');
SELECT throws_ok(format('SELECT paperclip.secret_revoke(%L, -3)', (SELECT id FROM created)),
                 '22023', 'version must be a positive integer', 'revoke: a negative version → 22023');

-- ------------------------------------------------------------ errors of resolve
SELECT throws_ok(format('SELECT paperclip.secret_resolve(%L, %L)', '00000000-0000-0000-0000-0000000000c2', pg_temp.ref('unicode')),
                 '42704', format('secret %s does not exist', pg_temp.ref('unicode')->>'secretId'),
                 'resolve: a secret of another company is answered like an unknown one (42704, same message)');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1',
                   '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-00000000dead"}')$$,
                 '42704', 'secret 00000000-0000-0000-0000-00000000dead does not exist', 'resolve: unknown secret → 42704');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('unicode', '7'))$$,
                 '42704', 'secret "unicode" has no version 7', 'resolve: unknown version → 42704');
SELECT throws_ok($$SELECT paperclip.secret_resolve(NULL, pg_temp.ref('unicode'))$$,
                 '22004', 'company_id must not be null', 'resolve: null company → 22004');

SELECT throws_ok(format('SELECT paperclip.secret_resolve(%L, %L)', '00000000-0000-0000-0000-0000000000c1', r), '22023', NULL,
                 'resolve: malformed ref ' || coalesce(r, 'NULL') || ' → 22023')
  FROM unnest(ARRAY[
    NULL,
    '[]',
    '"secret"',
    '{}',
    '{"secretId": "00000000-0000-0000-0000-0000000000aa"}',
    '{"type": "secret", "secretId": "00000000-0000-0000-0000-0000000000aa"}',
    '{"type": "secret_ref"}',
    '{"type": "secret_ref", "secretId": "not-a-uuid"}',
    '{"type": "secret_ref", "secretId": 42}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": 0}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": -1}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": 1.5}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": "2"}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": "newest"}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "version": true}',
    '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-0000000000aa", "extra": 1}'
  ]) AS r;

-- ------------------------------------------------------------ errors of create and rotate
SELECT throws_ok($$SELECT paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'unicode', 'x')$$,
                 '23505', 'secret "unicode" already exists in company 00000000-0000-0000-0000-0000000000c1',
                 'create: a duplicate name → 23505');
SELECT throws_ok($$SELECT paperclip.secret_create('00000000-0000-0000-0000-00000000dead', 'n', 'x')$$,
                 '42704', 'company 00000000-0000-0000-0000-00000000dead does not exist', 'create: unknown company → 42704');
SELECT throws_ok($$SELECT paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'n', NULL)$$,
                 '22004', 'value must not be null', 'create: a null value → 22004');
SELECT throws_ok($$SELECT paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', '  ', 'x')$$,
                 '22023', 'secret name must not be empty', 'create: a blank name → 22023');
SELECT throws_ok($$SELECT paperclip.secret_rotate('00000000-0000-0000-0000-00000000dead', 'x')$$,
                 '42704', 'secret 00000000-0000-0000-0000-00000000dead does not exist', 'rotate: unknown secret → 42704');
-- names and descriptions are bounded (255 and 4096 characters), without control characters
SELECT throws_ok(format('SELECT paperclip.secret_create(%L, %L, %L)', '00000000-0000-0000-0000-0000000000c1', repeat('n', 10000000), 'x'),
                 '22023', 'secret name must be at most 255 characters', 'create: a 10 MB name → 22023 naming the name, not a btree error');
SELECT throws_ok(format('SELECT paperclip.secret_create(%L, %L, %L)', '00000000-0000-0000-0000-0000000000c1', repeat('n', 256), 'x'),
                 '22023', 'secret name must be at most 255 characters', 'create: a name of 256 characters → 22023');
SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', repeat('é', 255), 'x')).name, repeat('é', 255),
          'create: a name of 255 two-byte characters is accepted');
SELECT throws_ok(format('SELECT paperclip.secret_create(%L, %L, %L)', '00000000-0000-0000-0000-0000000000c1', E'deploy\nkey', 'x'),
                 '22023', 'secret name must not contain control characters', 'create: a name with a newline → 22023');
SELECT throws_ok(format('SELECT paperclip.secret_create(%L, %L, %L, %L)', '00000000-0000-0000-0000-0000000000c1', 'd', 'x', repeat('d', 4097)),
                 '22023', 'secret description must be at most 4096 characters', 'create: a description of 4097 characters → 22023');
SELECT throws_ok(format('SELECT paperclip.secret_create(%L, %L, %L, %L)', '00000000-0000-0000-0000-0000000000c1', 'd', 'x', 'a' || chr(27) || '[31m'),
                 '22023', 'secret description must not contain control characters', 'create: a description with ESC → 22023');
SELECT is((paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'described', 'x', E'line one\n\tline two')).description,
          E'line one\n\tline two', 'create: a multi-line description is accepted');
SELECT throws_ok(format('UPDATE paperclip.company_secrets SET name = %L WHERE name = %L', repeat('n', 10000000), 'described'),
                 '23514', NULL, 'a 10 MB name written by UPDATE → the CHECK constraint (23514), before any btree error');
SELECT throws_ok($$UPDATE paperclip.company_secrets SET description = repeat('d', 4097) WHERE name = 'described'$$,
                 '23514', NULL, 'a description of 4097 characters written by UPDATE → 23514');
-- the duplicate's 23505 names its constraint and table, as PostgreSQL's own unique violation does
CREATE FUNCTION pg_temp.duplicate_fields() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  s text; t text; c text;
BEGIN
  PERFORM paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'described', 'x');
  RETURN 'no error';
EXCEPTION WHEN unique_violation THEN
  GET STACKED DIAGNOSTICS s = SCHEMA_NAME, t = TABLE_NAME, c = CONSTRAINT_NAME;
  RETURN s || '.' || t || ' ' || c;
END
$$;
SELECT is(pg_temp.duplicate_fields(), 'paperclip.company_secrets company_secrets_company_id_name_key',
          'create: the duplicate-name 23505 carries schema, table and constraint name');

-- ------------------------------------------------------------ tampering
-- material (with its key id) copied from "twin" v1 onto "unicode" v1
UPDATE paperclip.company_secret_versions AS v
   SET material = t.material, key_id = t.key_id, value_fingerprint = t.value_fingerprint
  FROM paperclip.company_secret_versions AS t
 WHERE t.secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'twin') AND t.version = 1
   AND v.secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'unicode') AND v.version = 1;
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('unicode'))$$,
                 'XX001', 'could not decrypt secret "unicode" version 1: authentication failed (the material was altered or belongs to another secret version)',
                 'material copied from another secret version fails to decrypt (XX001, authentication failed)');
-- one flipped ciphertext byte
UPDATE paperclip.company_secret_versions
   SET material = jsonb_set(material, '{ciphertext}', to_jsonb(encode(set_byte(decode(material->>'ciphertext', 'base64'), 3,
                      get_byte(decode(material->>'ciphertext', 'base64'), 3) # 1), 'base64')))
 WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'empty');
SELECT throws_like($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('empty'))$$,
                   '%version 1: authentication failed%', 'a flipped ciphertext byte fails authentication');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('empty'))$$,
                 'XX001', NULL, 'a flipped ciphertext byte → XX001');
-- one flipped nonce byte
UPDATE paperclip.company_secret_versions
   SET material = jsonb_set(material, '{nonce}', to_jsonb(encode(set_byte(decode(material->>'nonce', 'base64'), 0,
                      get_byte(decode(material->>'nonce', 'base64'), 0) # 128), 'base64')))
 WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'twin') AND version = 2;
SELECT throws_like($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('twin', '2'))$$,
                   '%authentication failed%', 'a flipped nonce byte fails authentication');
-- the version number is bound too: versions 1 and 2 of twin swap materials
UPDATE paperclip.company_secret_versions
   SET material = (SELECT material FROM paperclip.company_secret_versions
                    WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'twin') AND version = 1)
 WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'twin') AND version = 2;
SELECT throws_like($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('twin', '2'))$$,
                   '%authentication failed%', 'material moved to another version of the same secret fails authentication');
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('twin', '1')), 'same-value',
          'the untouched version still resolves');
-- material that is not ours
UPDATE paperclip.company_secret_versions SET material = '{"alg": "rot13", "ciphertext": "abc"}'
 WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'twin') AND version = 2;
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('twin', '2'))$$,
                 'XX001', 'could not decrypt secret "twin" version 2: the stored material is malformed',
                 'malformed material → XX001 saying so');
-- a key id that is not loaded: the wrong-key error, distinct from authentication failure
UPDATE paperclip.company_secret_versions SET key_id = '00000000deadbeef'
 WHERE secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'long');
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('long'))$$,
                 'XX001', 'could not decrypt secret "long" version 1: master key "00000000deadbeef" is not loaded (wrong key)',
                 'a version under a key that is not loaded → XX001 wrong key');

-- ------------------------------------------------------------ no key
SET LOCAL paperclip.master_key_file = '';
SELECT throws_ok($$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$,
                 '55000', 'no master key is configured', 'resolve without a key configured → 55000');
SELECT throws_ok($$SELECT paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'new', 'x')$$,
                 '55000', 'no master key is configured', 'create without a key configured → 55000');
SET LOCAL paperclip.master_key_file = '/nonexistent/paperclip.key';
SELECT throws_ok($$SELECT paperclip.secret_rotate((SELECT id FROM pg_temp.created), 'x')$$,
                 '55000', 'could not access the master key file', 'a missing key file → 55000');
SET LOCAL paperclip.master_key_file = :'keyfile';
SELECT is(paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key')),
          'v4-delta-0Ta', 'with the key file back, secrets resolve again');

-- ------------------------------------------------------------ roles and companies
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$),
          'v4-delta-0Ta', 'paperclip_admin resolves a secret of its session''s company');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c2',
            $$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$),
          'ERROR 42501', 'paperclip_admin cannot resolve for a company other than its session''s');
SELECT is(pg_temp.run_as('pcr_c1_admin', NULL,
            $$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$),
          'ERROR 42501', 'paperclip_admin without paperclip.company_id resolves nothing');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT (paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'admin-made', 'admin-value')).name$$),
          'admin-made', 'paperclip_admin creates a secret in its company');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT (paperclip.secret_create('00000000-0000-0000-0000-0000000000c2', 'intruder', 'x')).name$$),
          'ERROR 42501', 'paperclip_admin cannot create a secret in another company');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            format('SELECT (paperclip.secret_rotate(%L, %L)).name',
                   (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2'), 'x')),
          'ERROR 42704', 'paperclip_admin cannot rotate a secret of another company (it does not exist for it)');
SELECT is(pg_temp.error_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            format('SELECT (paperclip.secret_rotate(%L, %L)).name',
                   (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2'), 'x')),
          format('42704: secret %s does not exist',
                 (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2')),
          'rotating another company''s secret: the same message as an unknown secret, naming no company');
SELECT is(pg_temp.error_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            format('SELECT (paperclip.secret_revoke(%L, 1)).name',
                   (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2'))),
          format('42704: secret %s does not exist',
                 (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2')),
          'revoking another company''s secret: the same answer as an unknown secret');
SELECT is(pg_temp.error_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', '{"type": "secret_ref", "secretId": "00000000-0000-0000-0000-00000000dead"}')$$),
          '42704: secret 00000000-0000-0000-0000-00000000dead does not exist', 'paperclip_admin resolving an unknown secret: 42704');
SELECT is(pg_temp.error_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            format('SELECT paperclip.secret_resolve(%L, %L)', '00000000-0000-0000-0000-0000000000c1',
                   jsonb_build_object('type', 'secret_ref', 'secretId',
                                      (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2')))),
          format('42704: secret %s does not exist',
                 (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2')),
          'paperclip_admin resolving another company''s secret for its own company: the same answer');
SELECT is(pg_temp.error_as('pcr_c1_admin', NULL,
            format('SELECT (paperclip.secret_rotate(%L, %L)).name',
                   (SELECT id FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2'), 'x')),
          '42501: role "pcr_c1_admin" has selected no company', 'rotating without a session company: 42501 whatever the secret');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT count(*)::text FROM paperclip.company_secrets$$),
          (SELECT count(*)::text FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c1'),
          'paperclip_admin sees only its company''s secrets');
SELECT is(pg_temp.run_as('pcr_c1_admin', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT material::text FROM paperclip.company_secret_versions LIMIT 1$$),
          'ERROR 42501', 'paperclip_admin cannot select material');
SELECT is(pg_temp.run_as('pcr_c1_agent', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT paperclip.secret_resolve('00000000-0000-0000-0000-0000000000c1', pg_temp.ref('deploy-key'))$$),
          'ERROR 42501', 'paperclip_agent cannot execute secret_resolve');
SELECT is(pg_temp.run_as('pcr_c1_agent', '00000000-0000-0000-0000-0000000000c1',
            $$SELECT count(*)::text FROM paperclip.company_secret_versions$$),
          'ERROR 42501', 'paperclip_agent cannot read secret versions');

-- ------------------------------------------------------------ re-encryption under the same key
SELECT is((SELECT count(*)::int FROM paperclip.company_secret_versions
            WHERE key_id IS DISTINCT FROM (SELECT key_id FROM paperclip.company_secret_versions
                                             WHERE secret_id = (SELECT id FROM created) AND version = 4)),
          1, 'exactly one version (the one given a foreign key id) is not under the current key');
UPDATE paperclip.company_secret_versions SET key_id = (SELECT key_id FROM paperclip.company_secret_versions
                                                        WHERE secret_id = (SELECT id FROM created) AND version = 4)
 WHERE key_id = '00000000deadbeef';
DELETE FROM paperclip.company_secrets WHERE name IN ('twin', 'unicode', 'empty');
SELECT is(paperclip.secret_reencrypt_all(), 0, 'reencrypt_all: nothing to do when every version is under the current key');

SELECT * FROM finish();
ROLLBACK;
