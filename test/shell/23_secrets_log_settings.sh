#!/usr/bin/env bash
# Secrets and the server's logging settings (issue 11, item 9).
#
# Part 1, the extension: on a cluster with log_parameter_max_length_on_error = -1
# (every bind parameter of a failing statement in CONTEXT, to the client and the
# log), statements sent with the extended protocol (pgbench -M extended: values
# as bind parameters) whose secret or config functions fail — a duplicate name
# (23505), an unknown secret, a blank name, no master key, a config refused for
# an inline private key or a token — show the value neither in the client's error
# nor in the server log.  A control statement shows that the setting does put a
# failing statement's parameter in both.
#
# Part 2, what core PostgreSQL logs whatever the extension does, as
# docs/secrets.md says: log_statement = all and log_min_duration_statement log bind
# parameters (not with log_parameter_max_length = 0); auto_explain with log_verbose prints function
# arguments; pg_stat_statements keeps DO, COPY and EXPLAIN text verbatim but
# normalises constants of a plain SELECT; a role given log_statement = 'none' by
# ALTER ROLE keeps its values out of the log even under log_statement = all and
# cannot set it back.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/tap.sh
W=$PCR_WORK/secrets_log_settings
DATA=$W/data
C1=00000000-0000-0000-0000-0000000000c1
PSQL="$PCR_PGBIN/psql -X -q -A -t -v ON_ERROR_STOP=1"
PGBENCH=$PCR_PGBIN/pgbench

rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
scripts/pcr-keygen "$W/master.key" >/dev/null || exit 1
PORT=$(pcr_free_port)
pcr_cluster_init "$DATA" "$PORT" "paperclip.master_key_file = '$W/master.key'" \
  "shared_preload_libraries = 'paperclip_runtime, pg_stat_statements'" \
  "log_parameter_max_length_on_error = -1" || exit 1
pcr_cluster_start "$DATA" || exit 1
trap 'pcr_cluster_stop "$DATA" immediate' EXIT
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
tap_plan 25

TAG=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
v() { echo "pcrcanary${TAG}$1"; }      # a distinct value per case
$PSQL -c "CREATE EXTENSION paperclip_runtime" -c "CREATE EXTENSION pg_stat_statements" \
  -c "INSERT INTO paperclip.companies (id, name) VALUES ('$C1', 'Company One')" || exit 1

# run one statement of a pgbench script with the extended protocol: bind parameters
# are the -D variables; prints pgbench's output (the error with its CONTEXT)
script() { printf '%s\n' "$1" >"$W/script.sql"; }
bind() { "$PGBENCH" -n -t 1 -M extended -f "$W/script.sql" "$@" 2>&1; }
CREATE_SQL='SELECT (paperclip.secret_create(:c, :n, :v)).name;'

# ---------------------------------------------------------- part 1: the extension
script "$CREATE_SQL"
bind -D c=$C1 -D n=dup -D v="$(v one)" >/dev/null
out=$(bind -D c=$C1 -D n=dup -D v="$(v two)")
tap_like "$out" 'ERROR:  secret "dup" already exists' "a duplicate name through bind parameters fails with our 23505"
[[ $out != *"$(v two)"* ]]
tap_ok $? "the duplicate's error to the client carries no bind parameter (no value in CONTEXT)"
out=$(bind -D c=00000000-0000-0000-0000-00000000dead -D n=x -D v="$(v three)")
tap_like "$out" 'company 00000000-0000-0000-0000-00000000dead does not exist' "an unknown company fails"
[[ $out != *"$(v three)"* ]]
tap_ok $? "its error carries no value"
out=$(bind -D c=$C1 -D n=' ' -D v="$(v four)")
tap_like "$out" 'secret name must not be empty' "a blank name fails"
[[ $out != *"$(v four)"* ]]
tap_ok $? "its error carries no value"
script 'SELECT (paperclip.secret_rotate(:s, :v)).name;'
out=$(bind -D s=00000000-0000-0000-0000-00000000dead -D v="$(v five)")
tap_like "$out" 'secret 00000000-0000-0000-0000-00000000dead does not exist' "rotating an unknown secret fails"
[[ $out != *"$(v five)"* ]]
tap_ok $? "its error carries no value"
script "$CREATE_SQL"
out=$(PGOPTIONS="-c paperclip.master_key_file=" bind -D c=$C1 -D n=nokey -D v="$(v six)")
tap_like "$out" 'no master key is configured' "creating without a master key fails"
[[ $out != *"$(v six)"* ]]
tap_ok $? "its error carries no value"
script "INSERT INTO paperclip.environments (company_id, name, driver, config) VALUES (:c, 'e', :d, :cfg::jsonb);"
out=$(bind -D c=$C1 -D d=ssh -D cfg="{\"host\": \"h\", \"username\": \"u\", \"remoteWorkspacePath\": \"/w\", \"privateKey\": \"$(v seven)\"}")
tap_like "$out" '"privateKey" must be null in a stored config' "a config with an inline private key is refused"
[[ $out != *"$(v seven)"* ]]
tap_ok $? "the refusal carries no bind parameter (the key)"
out=$(bind -D c=$C1 -D d=sandbox -D cfg="{\"provider\": \"elsewhere\", \"env\": {\"API_TOKEN\": \"$(v eight)\"}}")
tap_like "$out" '"env.API_TOKEN" looks like a credential' "an unloaded provider's config with a token is refused"
[[ $out != *"$(v eight)"* ]]
tap_ok $? "the refusal carries no bind parameter (the token)"
script 'SELECT :v::int;'
out=$(bind -D v="pcrcontrol${TAG}")
[[ $out == *"parameter \$1 = 'pcrcontrol${TAG}'"* ]]
tap_ok $? "control: the setting shows a failing statement's bind parameter to the client"
grep -q -F "pcrcontrol${TAG}" "$DATA/server.log"
tap_ok $? "control: and in the server log"
tap_is "$(grep -c -F "pcrcanary${TAG}" "$DATA/server.log")" 0 "no value of part 1 is in the server log"

# ---------------------------------------------------------- part 2: core logging
script "$CREATE_SQL"
PGOPTIONS="-c log_statement=all" bind -D c=$C1 -D n=p1 -D v="$(v logstatement)" >/dev/null
grep -q -F "\$3 = '$(v logstatement)'" "$DATA/server.log"
tap_ok $? "log_statement = all logs the bind parameters (the value)"
PGOPTIONS="-c log_min_duration_statement=0" bind -D c=$C1 -D n=p5 -D v="$(v duration)" >/dev/null
grep -q -F "\$3 = '$(v duration)'" "$DATA/server.log"
tap_ok $? "so does log_min_duration_statement when a statement reaches it"
PGOPTIONS="-c log_statement=all -c log_parameter_max_length=0" bind -D c=$C1 -D n=p2 -D v="$(v nolength)" >/dev/null
tap_is "$(grep -c -F "$(v nolength)" "$DATA/server.log")" 0 "with log_parameter_max_length = 0 it does not"
PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 -c auto_explain.log_verbose=on" \
  bind -D c=$C1 -D n=p3 -D v="$(v autoexplain)" >/dev/null
grep -q -F "'$(v autoexplain)'::text" "$DATA/server.log"
tap_ok $? "auto_explain with log_verbose prints the function's arguments (the value)"
$PSQL >/dev/null <<SQL || exit 1
DO \$\$ BEGIN PERFORM paperclip.secret_create('$C1', 'q1', '$(v do)'); END \$\$;
COPY (SELECT paperclip.secret_create('$C1', 'q2', '$(v copy)')) TO STDOUT;
EXPLAIN SELECT paperclip.secret_create('$C1', 'q3', '$(v explain)');
SELECT paperclip.secret_create('$C1', 'q4', '$(v literal)');
SQL
kept=$($PSQL -c "SELECT string_agg(w, ',' ORDER BY w) FROM unnest(ARRAY['do', 'copy', 'explain', 'literal', 'one', 'p1']) AS w
                  WHERE EXISTS (SELECT 1 FROM pg_stat_statements WHERE query LIKE '%pcrcanary${TAG}' || w || '%')")
tap_is "$kept" "copy,do,explain" \
  "pg_stat_statements keeps DO, COPY and EXPLAIN text verbatim, not a plain SELECT's constants nor bind parameters"
$PSQL -c "CREATE ROLE pcr_quiet_writer LOGIN IN ROLE paperclip_admin" \
  -c "ALTER ROLE pcr_quiet_writer SET log_statement = 'none'" \
  -c "ALTER ROLE pcr_quiet_writer SET paperclip.company_id = '$C1'" \
  -c "INSERT INTO paperclip.company_roles (company_id, role) VALUES ('$C1', 'pcr_quiet_writer')" >/dev/null || exit 1
pcr_setting "$PGPORT" log_statement all || exit 1
PGUSER=pcr_quiet_writer bind -D c=$C1 -D n=p4 -D v="$(v quietrole)" >/dev/null
$PSQL -c "SELECT 'pcrmarker${TAG}'" >/dev/null
grep -q -F "pcrmarker${TAG}" "$DATA/server.log" && [ "$(grep -c -F "$(v quietrole)" "$DATA/server.log")" -eq 0 ]
tap_ok $? "under log_statement = all, a role set to log_statement = 'none' leaves its values out of the log"
tap_like "$(PGUSER=pcr_quiet_writer $PSQL -c "SET log_statement = 'all'" 2>&1)" \
  'permission denied to set parameter "log_statement"' "and that role cannot set it back"
pcr_setting_reset "$PGPORT" log_statement none || exit 1
tap_is "$($PSQL -c "SELECT count(*) FROM paperclip.company_secrets WHERE name IN ('dup', 'p1', 'p3', 'p4', 'q1', 'q2', 'q4')")" 7 \
  "control: the statements of part 2 did create their secrets"

[ "$TAP_FAILED" -eq 0 ]
