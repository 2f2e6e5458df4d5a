\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(25);

-- the config of the bwrap provider (docs/providers.md), as stored
CREATE FUNCTION pg_temp.bwrap(config text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT paperclip.validate_environment_config('sandbox', config::jsonb)
$$;

SELECT is(pg_temp.bwrap('{"provider": "bwrap"}'),
          '{"provider": "bwrap", "image": "host", "reuseLease": false, "network": "none"}'::jsonb,
          'defaults: image host, no reuse, network none');
SELECT is(pg_temp.bwrap('{"provider": "bwrap", "image": " /srv/images/debian ", "reuseLease": true, "network": "host",
                          "timeoutMs": 60000, "memoryLimitMb": 512, "leaseTtlSeconds": 600}'),
          '{"provider": "bwrap", "image": "/srv/images/debian", "reuseLease": true, "network": "host",
            "timeoutMs": 60000, "memoryLimitMb": 512, "leaseTtlSeconds": 600}'::jsonb,
          'every field, the image trimmed');
SELECT is(pg_temp.bwrap('{"provider": "bwrap", "image": "/srv/img/"}')->>'image', '/srv/img',
          'an image path is canonicalised');
SELECT is(pg_temp.bwrap('{"provider": "bwrap", "env": {"LANG": "C.UTF-8", "API_TOKEN": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-00000000000a"}}}')->'env',
          '{"LANG": "C.UTF-8", "API_TOKEN": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-00000000000a", "version": "latest"}}'::jsonb,
          'env: strings and secret refs, the refs normalised');

SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "cpus": 2}')$$, '22023',
                 'invalid sandbox environment config: unknown field "cpus"', 'an unknown field is refused');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": "debian:12"}')$$, '22023',
                 'invalid sandbox environment config: "image" must be an absolute path', 'an image must be "host" or an absolute path');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": "/srv/../etc"}')$$, '22023',
                 'invalid sandbox environment config: "image" must not contain a ".." segment', 'an image path with ".." is refused');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": "/"}')$$, '22023',
                 'invalid sandbox environment config: "image" must not be the host''s root directory', 'the host''s root is no image');
SELECT throws_ok(format($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": "%s"}')$$,
                        regexp_replace(current_setting('data_directory'), '/[^/]+$', '')), '22023',
                 'invalid sandbox environment config: "image" must not contain the server''s data directory',
                 'an image holding the data directory is refused');
SELECT throws_ok(format($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": "%s"}')$$,
                        current_setting('paperclip_bwrap.sandbox_root')), '22023',
                 'invalid sandbox environment config: "image" must not contain paperclip_bwrap.sandbox_root',
                 'an image holding the sandbox root (other leases'' workspaces) is refused');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "image": 5}')$$, '22023',
                 'invalid sandbox environment config: "image" must be a string, not number', 'an image must be a string');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "reuseLease": "yes"}')$$, '22023',
                 'invalid sandbox environment config: "reuseLease" must be a boolean, not string', 'reuseLease must be a boolean');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "network": "bridge"}')$$, '22023',
                 'invalid sandbox environment config: "network" must be "none" or "host"', 'network is none or host');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "timeoutMs": 0}')$$, '22023',
                 'invalid sandbox environment config: "timeoutMs" must be an integer between 1 and 3600000', 'timeoutMs at least 1');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "timeoutMs": 3600001}')$$, '22023',
                 'invalid sandbox environment config: "timeoutMs" must be an integer between 1 and 3600000', 'timeoutMs at most an hour');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "memoryLimitMb": 8}')$$, '22023',
                 'invalid sandbox environment config: "memoryLimitMb" must be an integer between 64 and 1048576', 'memoryLimitMb at least 64');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "memoryLimitMb": 1.5}')$$, '22023',
                 'invalid sandbox environment config: "memoryLimitMb" must be an integer between 64 and 1048576', 'memoryLimitMb an integer');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "env": ["A=1"]}')$$, '22023',
                 'invalid sandbox environment config: "env" must be an object of variables, not array', 'env must be an object');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "env": {"1ABC": "x"}}')$$, '22023',
                 'invalid sandbox environment config: "env" has a variable name that is not [A-Za-z_][A-Za-z0-9_]* (at most 128 bytes)',
                 'env names are shell names');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "env": {"A": 1}}')$$, '22023',
                 'invalid sandbox environment config: "env.A" must be a string or a secret ref, not number', 'env values are strings or refs');
SELECT throws_ok($$SELECT pg_temp.bwrap(E'{"provider": "bwrap", "env": {"A": "x\\u0001y"}}')$$, '22023',
                 NULL, 'an env value with a control character is refused');
SELECT throws_ok($$SELECT pg_temp.bwrap('{"provider": "bwrap", "env": {"A": {"type": "secret_ref", "secretId": "nope"}}}')$$, '22023',
                 NULL, 'a malformed secret ref is refused when stored');
SELECT throws_like($$SELECT pg_temp.bwrap('{"provider": "bwrap", "env": {"GITHUB_TOKEN": "ghp_plaintext"}}')$$,
                   '%GITHUB_TOKEN%', 'a credential in plain text is refused: it must be a secret ref');
SELECT is((SELECT config FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e6'),
          '{"provider": "bwrap", "image": "host", "reuseLease": true, "network": "none"}'::jsonb,
          'a stored environment holds the normalised config');
SELECT throws_ok($$UPDATE paperclip.environments SET config = '{"provider": "bwrap", "network": 1}'
                    WHERE id = '00000000-0000-0000-0000-0000000000e5'$$, '22023',
                 'invalid sandbox environment config: "network" must be a string, not number', 'an update is validated too');

SELECT * FROM finish();
ROLLBACK;
