\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(44);

-- a helper that inserts an environment with a config; every call must fail
CREATE FUNCTION pg_temp.env(driver text, config text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO paperclip.environments (company_id, name, driver, config)
  VALUES ('00000000-0000-0000-0000-0000000000c1', 'bad', driver, config::jsonb)
$$;

-- local
SELECT throws_ok($$SELECT pg_temp.env('local', '[]')$$, '22023',
                 'invalid local environment config: "config" must be a JSON object', 'local: array config');
SELECT throws_ok($$SELECT pg_temp.env('local', '"text"')$$, '22023',
                 'invalid local environment config: "config" must be a JSON object', 'local: scalar config');
SELECT throws_ok($$SELECT pg_temp.env('local', '{"leaseTtlSeconds": 0}')$$, '22023',
                 'invalid local environment config: "leaseTtlSeconds" must be an integer number of seconds between 1 and 315360000',
                 'local: zero TTL');
SELECT throws_ok($$SELECT pg_temp.env('local', '{"leaseTtlSeconds": "600"}')$$, '22023',
                 'invalid local environment config: "leaseTtlSeconds" must be an integer number of seconds between 1 and 315360000', 'local: TTL as a string');
SELECT throws_ok($$SELECT pg_temp.env('local', '{"leaseTtlSeconds": 1.5}')$$, '22023',
                 'invalid local environment config: "leaseTtlSeconds" must be an integer number of seconds between 1 and 315360000', 'local: fractional TTL');
-- ssh
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "host" is required', 'ssh: missing host');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "   ", "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "host" must not be empty', 'ssh: blank host');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "a b", "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "host" must not contain whitespace or control characters', 'ssh: host with a space');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "-oProxyCommand=x", "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "host" must not start with "-"', 'ssh: host that looks like an option');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "port": 0, "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'ssh: port 0');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "port": 65536, "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'ssh: port 65536');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "port": "22a", "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'ssh: non-numeric port string');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "port": 22.5, "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'ssh: fractional port');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "port": true, "username": "u", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'ssh: boolean port');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "username" is required', 'ssh: missing username');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": 7, "remoteWorkspacePath": "/w"}')$$, '22023',
                 'invalid ssh environment config: "username" must be a string, not number', 'ssh: numeric username');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u"}')$$, '22023',
                 'invalid ssh environment config: "remoteWorkspacePath" is required', 'ssh: missing workspace path');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "work/dir"}')$$, '22023',
                 'invalid ssh environment config: "remoteWorkspacePath" must be an absolute path', 'ssh: relative workspace path');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"}')$$,
                 '22023', 'invalid ssh environment config: "privateKey" must be null in a stored config', 'ssh: inline private key');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "password": "hunter2"}')$$,
                 '22023', 'invalid ssh environment config: unknown field "password"', 'ssh: unknown key');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "strictHostKeyChecking": "no"}')$$,
                 '22023', 'invalid ssh environment config: "strictHostKeyChecking" must be a boolean, not string', 'ssh: strictHostKeyChecking as a string');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "knownHosts": 42}')$$,
                 '22023', 'invalid ssh environment config: "knownHosts" must be a string, not number', 'ssh: numeric knownHosts');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "privateKeySecretRef": {"type": "secret", "secretId": "00000000-0000-0000-0000-000000000001"}}')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef": "type" must be "secret_ref"', 'ssh: secret ref of the wrong type');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "privateKeySecretRef": {"type": "secret_ref", "secretId": "nope"}}')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef": "secretId" must be a UUID string', 'ssh: secret ref with a bad id');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "privateKeySecretRef": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-000000000001", "version": 0}}')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef": "version" must be "latest" or a positive integer', 'ssh: secret ref version 0');
SELECT throws_ok($$SELECT pg_temp.env('ssh', '{"host": "h", "username": "u", "remoteWorkspacePath": "/w", "privateKeySecretRef": "00000000-0000-0000-0000-000000000001"}')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef": must be a JSON object', 'ssh: secret ref as a bare string');
-- sandbox
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"reuseLease": "true"}')$$, '22023',
                 'invalid sandbox environment config: "reuseLease" must be a boolean, not string', 'sandbox: reuseLease as a string');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"image": 5}')$$, '22023',
                 'invalid sandbox environment config: "image" must be a string, not number', 'sandbox: numeric image');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"imaeg": "x"}')$$, '22023',
                 'invalid sandbox environment config: unknown field "imaeg"', 'sandbox: misspelt key');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": 7}')$$, '22023',
                 'invalid sandbox environment config: "provider" must be a string, not number', 'sandbox: numeric provider');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": ""}')$$, '22023',
                 'invalid sandbox environment config: "provider" must not be empty', 'sandbox: empty provider');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '[1, 2]')$$, '22023',
                 'invalid sandbox environment config: "config" must be a JSON object', 'sandbox: array config');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "elsewhere", "leaseTtlSeconds": 9e15}')$$, '22023',
                 'invalid sandbox environment config: "leaseTtlSeconds" must be an integer number of seconds between 1 and 315360000', 'sandbox: an unloaded provider''s config still has its TTL checked');
SELECT is(paperclip.lease_ttl('{"leaseTtlSeconds": 9000000000000000}'), interval '3650 days',
          'lease_ttl() clamps a TTL that slipped past validation');
-- driver itself, and updates
SELECT throws_ok($$SELECT pg_temp.env('docker', '{}')$$, '23514', NULL, 'unknown driver → check violation');
SELECT throws_ok($$UPDATE paperclip.environments SET config = config || '{"port": 99999}' WHERE id = '00000000-0000-0000-0000-0000000000e4'$$,
                 '22023', 'invalid ssh environment config: "port" must be an integer between 1 and 65535', 'an UPDATE to a bad config is refused too');
SELECT throws_ok($$UPDATE paperclip.environments SET driver = 'ssh' WHERE id = '00000000-0000-0000-0000-0000000000e1'$$,
                 '22023', 'invalid ssh environment config: "host" is required', 'changing the driver re-validates the config');
SELECT is((SELECT count(*)::int FROM paperclip.environments WHERE name = 'bad'), 0, 'no bad environment was stored');

-- normalisation
SELECT is((SELECT config FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e4'),
          '{"host": "127.0.0.1", "port": 2222, "username": "agent", "remoteWorkspacePath": "/srv/work", "privateKey": null,
            "privateKeySecretRef": null, "knownHosts": null, "strictHostKeyChecking": true}'::jsonb,
          'ssh: numeric-string port, defaults filled in');
SELECT is(paperclip.validate_environment_config('ssh',
            '{"host": " example.org ", "username": "u", "remoteWorkspacePath": "/w", "knownHosts": "   ", "strictHostKeyChecking": false,
              "privateKeySecretRef": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-000000000001"}, "leaseTtlSeconds": 60}'),
          '{"host": "example.org", "port": 22, "username": "u", "remoteWorkspacePath": "/w", "privateKey": null, "knownHosts": null,
            "strictHostKeyChecking": false, "leaseTtlSeconds": 60,
            "privateKeySecretRef": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-000000000001", "version": "latest"}}'::jsonb,
          'ssh: trimmed host, default port, empty knownHosts → null, secret ref version defaults to latest');
SELECT is((SELECT config FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e2'),
          '{"provider": "fake", "image": "debian:12", "reuseLease": false}'::jsonb, 'sandbox: image trimmed, defaults filled in');
SELECT is(paperclip.validate_environment_config('sandbox', '{"image": "   "}'),
          '{"provider": "fake", "image": "ubuntu:24.04", "reuseLease": false}'::jsonb, 'sandbox: blank image → default');
SELECT is(paperclip.validate_environment_config('local', '{"anything": [1, 2], "leaseTtlSeconds": 30}'),
          '{"anything": [1, 2], "leaseTtlSeconds": 30}'::jsonb, 'local: any object is kept as given');
SELECT throws_ok($$SELECT paperclip.validate_environment_config('docker', '{}')$$, '22023',
                 'unknown environment driver "docker"', 'validate_environment_config of an unknown driver → 22023');

SELECT * FROM finish();
ROLLBACK;
