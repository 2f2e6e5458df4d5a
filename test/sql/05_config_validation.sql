\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(94);

-- a helper that inserts an environment with a config; every call must fail
CREATE FUNCTION pg_temp.env(driver text, config text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO paperclip.environments (company_id, name, driver, config)
  VALUES ('00000000-0000-0000-0000-0000000000c1', 'bad', driver, config::jsonb)
$$;


-- an ssh config with some fields replaced; and an environment insert with a jsonb config
CREATE FUNCTION pg_temp.ssh(over jsonb) RETURNS text LANGUAGE sql AS $$
  SELECT ('{"host": "h", "username": "u", "remoteWorkspacePath": "/w"}'::jsonb || over)::text
$$;
CREATE FUNCTION pg_temp.envj(driver text, config jsonb) RETURNS void LANGUAGE sql AS $$
  SELECT pg_temp.env(driver, config::text)
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

-- store-time bounds and characters (issue 11, item 8): every refusal is 22023 naming the field
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', repeat('h', 10000000)))),
                 '22023', 'invalid ssh environment config: "config" is too large (at most 65536 bytes)', 'ssh: a 10 MB host (the config is too large)');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', repeat('h', 254)))),
                 '22023', 'invalid ssh environment config: "host" is too long (at most 253 bytes)', 'ssh: a host of 254 bytes');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'build' || chr(8203) || '.example.org'))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: host with a zero-width space (U+200B)');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'build.example.org' || chr(160)))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: host with a no-break space (U+00A0)');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'ex' || chr(1072) || 'mple.org'))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: host with a Cyrillic look-alike letter');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'a..b'))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: host with an empty label');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'fe80::1%eth0'))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: IPv6 address with a zone');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'evil.com/x'))),
                 '22023', 'invalid ssh environment config: "host" must be an ASCII host name or an IP address', 'ssh: host with a slash');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', '127.1'))),
                 '22023', 'invalid ssh environment config: "host" must write an IPv4 address as four decimal numbers (a.b.c.d)', 'ssh: short-hand IPv4 address 127.1');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', '0x7f.0.0.1'))),
                 '22023', 'invalid ssh environment config: "host" must write an IPv4 address as four decimal numbers (a.b.c.d)', 'ssh: hexadecimal IPv4 address');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'h' || chr(27) || 'x'))),
                 '22023', 'invalid ssh environment config: "host" must not contain whitespace or control characters', 'ssh: host with ESC');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('username', repeat('u', 256)))),
                 '22023', 'invalid ssh environment config: "username" is too long (at most 255 bytes)', 'ssh: a username of 256 bytes');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('username', 'u' || chr(133)))),
                 '22023', 'invalid ssh environment config: "username" must not contain whitespace or control characters', 'ssh: username with a C1 control (U+0085)');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/' || repeat('w', 4095)))),
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" is too long (at most 4095 bytes)', 'ssh: a workspace path of 4096 bytes');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', E'/srv/work\nrm -rf /'))),
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" must not contain control characters', 'ssh: workspace path with a newline');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/srv/' || chr(27) || '[2Jwork'))),
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" must not contain control characters', 'ssh: workspace path with ESC');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/srv/work/../../etc'))),
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" must not contain a ".." segment', 'ssh: workspace path climbing out with ..');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/srv/..'))),
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" must not contain a ".." segment', 'ssh: workspace path ending in ..');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('knownHosts', repeat('k', 40000)))),
                 '22023', 'invalid ssh environment config: "knownHosts" is too long (at most 32767 bytes)', 'ssh: oversized knownHosts');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('knownHosts', 'h ssh-ed25519 AAAA' || chr(27)))),
                 '22023', 'invalid ssh environment config: "knownHosts" must not contain control characters other than tab, newline and carriage return',
                 'ssh: knownHosts with ESC');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'local', jsonb_build_object('notes', repeat('n', 70000))),
                 '22023', 'invalid local environment config: "config" is too large (at most 65536 bytes)', 'local: a config over 64 kB');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'ssh', pg_temp.ssh(jsonb_build_object('host', 'h', 'x', repeat('n', 70000)))),
                 '22023', 'invalid ssh environment config: "config" is too large (at most 65536 bytes)', 'ssh: the size is checked before the fields');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox', jsonb_build_object('image', repeat('i', 10000000))),
                 '22023', 'invalid sandbox environment config: "config" is too large (at most 65536 bytes)', 'sandbox: a 10 MB image (the config is too large)');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox', jsonb_build_object('image', repeat('i', 2000))),
                 '22023', 'invalid sandbox environment config: "image" is too long (at most 1024 bytes)', 'sandbox: an image over 1 kB');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox', jsonb_build_object('image', E'debian:12\nEVIL')),
                 '22023', 'invalid sandbox environment config: "image" must not contain control characters', 'sandbox: image with a newline');
-- provider names, loaded or not
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "../../../../tmp/evil"}')$$, '22023',
                 'invalid sandbox environment config: "provider" must match ^[a-z0-9][a-z0-9._-]*$', 'sandbox: provider name with a path');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "Fake"}')$$, '22023',
                 'invalid sandbox environment config: "provider" must match ^[a-z0-9][a-z0-9._-]*$', 'sandbox: provider name in capitals');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": ".hidden"}')$$, '22023',
                 'invalid sandbox environment config: "provider" must match ^[a-z0-9][a-z0-9._-]*$', 'sandbox: provider name starting with a dot');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox', jsonb_build_object('provider', repeat('p', 64))),
                 '22023', 'invalid sandbox environment config: "provider" is too long (at most 63 bytes)', 'sandbox: provider name of 64 bytes');
-- an unloaded provider's config: bounded, and no credentials in plain text
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox', jsonb_build_object('provider', 'elsewhere', 'blob', repeat('b', 70000))),
                 '22023', 'invalid sandbox environment config: "config" is too large (at most 65536 bytes)', 'sandbox: an unloaded provider''s config over 64 kB');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "elsewhere", "apiToken": "tok-123"}')$$, '22023',
                 'invalid sandbox environment config: "apiToken" looks like a credential: it must be a secret ref, not a string',
                 'sandbox: an unloaded provider''s config with a token');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "elsewhere", "env": {"PATH": "/bin", "GITHUB_TOKEN": "ghp_x"}}')$$, '22023',
                 'invalid sandbox environment config: "env.GITHUB_TOKEN" looks like a credential: it must be a secret ref, not a string',
                 'sandbox: a nested credential is found and named by its path');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "elsewhere", "auth": {"credentials": [{"user": "u", "pass": "p"}]}}')$$, '22023',
                 'invalid sandbox environment config: "auth.credentials[0].pass" looks like a credential: it must be a secret ref, not a string',
                 'sandbox: everything under a credential key must be a secret ref');
SELECT throws_ok(format('SELECT pg_temp.env(%L, %L)', 'sandbox',
                        jsonb_build_object('provider', 'elsewhere', 'files', jsonb_build_array(E'-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----'))),
                 '22023', 'invalid sandbox environment config: "files[0]" holds a private key', 'sandbox: a PEM private key under any key');
SELECT throws_ok($$SELECT pg_temp.env('sandbox', '{"provider": "elsewhere", "client_secret": "s"}')$$, '22023',
                 'invalid sandbox environment config: "client_secret" looks like a credential: it must be a secret ref, not a string',
                 'sandbox: snake_case credential key');
SELECT is(paperclip.validate_environment_config('sandbox',
            '{"provider": "elsewhere", "maxTokens": 4096, "tokenizer": "cl100k", "secretsEnabled": true, "password": null,
              "apiKey": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-000000000001"}}'),
          '{"provider": "elsewhere", "maxTokens": 4096, "tokenizer": "cl100k", "secretsEnabled": true, "password": null,
            "apiKey": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-000000000001"}}'::jsonb,
          'sandbox: an unloaded provider''s config with secret refs and look-alike keys is stored as given');
SELECT is((SELECT count(*)::int FROM paperclip.environments WHERE name = 'bad'), 0, 'none of the refused configs was stored');

-- what is accepted, normalised
SELECT is(paperclip.validate_environment_config('ssh', pg_temp.ssh('{"host": "[2001:db8::7]"}')::jsonb)->>'host', '2001:db8::7',
          'ssh: a bracketed IPv6 host is stored without brackets');
SELECT is(paperclip.validate_environment_config('ssh', pg_temp.ssh('{"host": "Build-01.corp_net.example."}')::jsonb)->>'host',
          'Build-01.corp_net.example.', 'ssh: a host name with capitals, "_" and a trailing dot is accepted as given');
SELECT is(paperclip.validate_environment_config('ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/srv/a..b/.x/./w'))::jsonb)->>'remoteWorkspacePath',
          '/srv/a..b/.x/./w', 'ssh: ".." inside a name and "." segments are not climbing out');
SELECT is(paperclip.validate_environment_config('ssh', pg_temp.ssh(jsonb_build_object('remoteWorkspacePath', '/srv/wörk space'))::jsonb)->>'remoteWorkspacePath',
          '/srv/wörk space', 'ssh: a workspace path with spaces and non-ASCII letters is fine');
SELECT is(paperclip.validate_environment_config('ssh', pg_temp.ssh(jsonb_build_object('knownHosts', E'a ssh-ed25519 AAAA\r\nb ssh-ed25519 BBBB\n'))::jsonb)->>'knownHosts',
          E'a ssh-ed25519 AAAA\r\nb ssh-ed25519 BBBB\n', 'ssh: knownHosts keeps its lines');

-- a row written past the trigger (before these checks existed) is refused when used
ALTER TABLE paperclip.environments DISABLE TRIGGER environments_config_check;
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
VALUES ('00000000-0000-0000-0000-0000000005e1', '00000000-0000-0000-0000-0000000000c1', 'old row', 'ssh',
        '{"host": "h", "username": "u", "remoteWorkspacePath": "/srv/../etc"}');
ALTER TABLE paperclip.environments ENABLE TRIGGER environments_config_check;
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000005e1',
                                                      '00000000-0000-0000-0000-0000000000f1')$$,
                 '22023', 'invalid ssh environment config: "remoteWorkspacePath" must not contain a ".." segment',
                 'a stored config with ".." is refused at acquire, before any connection');
SELECT is((paperclip.environment_probe('00000000-0000-0000-0000-0000000005e1')->'details'->>'sqlstate'), '22023',
          'and by the probe');

-- text arguments copied into lease metadata are bounded
SELECT throws_ok(format($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                                             '00000000-0000-0000-0000-0000000000f1', NULL, NULL, %L)$$, repeat('m', 10000000)),
                 '22023', 'argument "execution_workspace_mode" is too long (at most 128 bytes)', 'acquire: a 10 MB execution_workspace_mode');
SELECT throws_ok(format($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                                             '00000000-0000-0000-0000-0000000000f1', NULL, NULL, %L)$$, E'shared\nmode'),
                 '22023', 'argument "execution_workspace_mode" must not contain control characters', 'acquire: execution_workspace_mode with a newline');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1'), 0,
          'the refused acquires wrote no lease');
SELECT is((paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                       '00000000-0000-0000-0000-0000000000f1', NULL, NULL, repeat('m', 128))).metadata->>'executionWorkspaceMode',
          repeat('m', 128), 'acquire: an execution_workspace_mode of 128 bytes is kept');

-- lease_ttl of something that is not a config
SELECT throws_ok($$SELECT paperclip.lease_ttl('[1, 2]')$$, '22023', 'argument "config" must be a JSON object', 'lease_ttl of an array → 22023');
SELECT throws_ok($$SELECT paperclip.lease_ttl('"6h"')$$, '22023', 'argument "config" must be a JSON object', 'lease_ttl of a scalar → 22023');

SELECT * FROM finish();
ROLLBACK;
