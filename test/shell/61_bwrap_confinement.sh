#!/usr/bin/env bash
# 61_bwrap_confinement — what a command in a bwrap sandbox can see and do,
# through the provider's execute entry point (test/fixtures/bwrap_test) and
# through paperclip.lease_execute() (the core's path of every driver): a
# read-only root of the host's /usr or of an image directory, no /etc/shadow,
# data directory, master key file or server environment, private /proc,
# /dev and /tmp, loopback only unless network "host", no capabilities, the
# address-space limit, exit codes told apart from signals and from "could
# not execute"; a destroy that follows no symbolic link; probe messages.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh
. test/lib/bwrap.sh

bwrap_skip_unless_usable
tap_plan 38
bwrap_fixtures
KEY=$PCR_WORK/k61.key
scripts/pcr-keygen "$KEY" >/dev/null || exit 1
[ "$(id -u)" -eq 0 ] && chown postgres: "$KEY"
# planted in the server's environment: no sandbox may see it
export PCR_PLANTED_SECRET=planted-in-the-postmaster
bwrap_cluster bwrap61 "paperclip.master_key_file = '$KEY'" "paperclip.reconcile_interval = '1s'"
unset PCR_PLANTED_SECRET
trap 'pcr_cluster_stop "$RDATA" immediate' EXIT
bwrap_db
sql "INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
       ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000c1', 'host net', 'sandbox',
        '{\"provider\": \"bwrap\", \"network\": \"host\"}'),
       ('00000000-0000-0000-0000-0000000000b3', '00000000-0000-0000-0000-0000000000c1', 'small', 'sandbox',
        '{\"provider\": \"bwrap\", \"memoryLimitMb\": 128}')" >/dev/null
sh_in() { bexec "$1" sh "array['-c', \$q\$$2\$q\$]"; }

L=$(acquire e5 f1)
tap_like "$(sh_in "$L" 'touch /usr/x; touch /x; touch /etc/x')" \
  "Read-only file system.*Read-only file system.*Read-only file system" "the root, /usr and /etc are read-only"
tap_like "$(sh_in "$L" 'cat /etc/shadow')" "No such file or directory" "/etc/shadow is not there"
tap_like "$(sh_in "$L" "ls $RDATA")" "No such file or directory" "the data directory is invisible"
tap_like "$(sh_in "$L" "cat $KEY")" "No such file or directory" "the master key file is invisible"
tap_is "$(sh_in "$L" 'ls / | grep -E "^(home|root|var|srv|opt|mnt|run|boot)$"')" "1||" \
  "none of the host's other top-level directories is there"
tap_is "$(sh_in "$L" 'env | cut -d= -f1 | sort | xargs')" "0|HOME PATH PWD
|" "the environment is exactly the spec's (and the PWD sh exports): nothing of the server's"
tap_is "$(sh_in "$L" 'grep -c PCR_PLANTED /proc/1/environ /proc/self/environ; true')" "0|/proc/1/environ:0
/proc/self/environ:0
|" "the planted server variable is nowhere in the sandbox"
tap_is "$(sh_in "$L" "awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \$1 }' /proc/net/dev | xargs")" "0|lo
|" "network none: loopback only"
hostnets=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | xargs)
LN=$(acquire b2 f2)
tap_is "$(sh_in "$LN" "awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \$1 }' /proc/net/dev | xargs")" "0|$hostnets
|" "network host: the host's interfaces"
tap_is "$(sh_in "$LN" 'test -e /etc/resolv.conf && echo resolv; true')$(sh_in "$L" 'test -e /etc/resolv.conf && echo resolv; true')" \
  "0|resolv
|0||" "network host brings /etc/resolv.conf, network none does not"
tap_is "$(sh_in "$L" 'n=$(ls /proc | grep -c "^[0-9]"); [ "$n" -le 6 ] && echo few; ls /proc/1/exe -l | grep -c bwrap')" "0|few
1
|" "a private /proc: only the sandbox's few processes, its init (bwrap) as pid 1"
tap_is "$(sh_in "$L" 'grep CapEff /proc/self/status')" "0|CapEff:	0000000000000000
|" "no capabilities"
tap_is "$(sh_in "$L" 'cat /proc/sys/kernel/hostname')" "0|sandbox
|" "its own hostname"
tap_like "$(sh_in "$L" 'ls /dev/null /dev/urandom; ls /dev/sda /dev/vda /dev/mem /dev/kmsg')" \
  "^2\|/dev/null
/dev/urandom
\|.*/dev/sda.*No such file.*/dev/vda.*No such file.*/dev/mem.*No such file.*/dev/kmsg.*No such file" \
  "a minimal private /dev: no disks, no kernel memory"
sh_in "$L" 'echo private > /tmp/t' >/dev/null
tap_like "$(sh_in "$L" 'cat /tmp/t')" "No such file" "/tmp is private to each command"
LS=$(acquire b3 f3)
tap_like "$(sh_in "$LS" 'grep "Max address space" /proc/self/limits')" "134217728 +134217728" \
  "memoryLimitMb: the address-space limit of every command"

# ---------------------------------------------------------------- the whole way: lease_execute, the pool, the provider
SID=$(sql "SELECT id FROM paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'token 61', 's3cr3t-value')")
r=$(sql "SELECT coalesce(exit_code::text, 'null') || '|' || stdout FROM paperclip.lease_execute('$L', 'sh',
           array['-c', 'echo \$TOKEN; tr \"\\0\" \" \" < /proc/1/cmdline | grep -c s3cr3t-valu[e]; true'],
           env => '{\"TOKEN\": {\"type\": \"secret_ref\", \"secretId\": \"$SID\"}}')")
tap_is "$r" "0|s3cr3t-value
0" "through lease_execute: a secret variable reaches the command, and no argv of the sandbox shows it"
tap_is "$(sql "SELECT stdout FROM paperclip.lease_execute('$L', 'cat', stdin => 'fed through the pool')")" \
  "fed through the pool" "through lease_execute: stdin"
tap_is "$(sql "SELECT length(stdout) || ' ' || exit_code || ' ' || stdout_truncated FROM paperclip.lease_execute('$L', 'sh',
                 array['-c', 'yes | head -c 5000000'], max_output_bytes => 1000)")" \
  "1000 0 true" "through lease_execute: output past the cap is drained, the command exits"
LF=$(acquire e2 f3)
tap_is "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$LF', 'true')")" \
  '0A000: sandbox provider "fake" cannot execute commands' "a fake lease cannot execute (0A000)"

# ---------------------------------------------------------------- results
tap_is "$(bexec "$L" no-such-command)" "127||no-such-command: No such file or directory" "a command that does not exist: 127 (not bwrap's 1)"
tap_is "$(sh_in "$L" 'kill -KILL $$')" "sig9||" "a command killed by SIGKILL: the signal (not bwrap's 137)"
tap_is "$(sh_in "$L" 'exit 137')" "137||" "a command exiting with 137: that exit code"
tap_is "$(bexec "$L" sleep "array['30']" NULL 300)" "sig15||" "past its timeout the command gets SIGTERM"
tap_like "$(bexec "$L" pwd NULL "'no/such/dir'")" "^1\|\|bwrap: Can't chdir" "a cwd that does not exist: the sandbox does not start"

# ---------------------------------------------------------------- destroy follows no link
CANARY=$PCR_WORK/canary
mkdir -p "$CANARY"; echo alive >"$CANARY/f"; chmod -R a+rwX "$CANARY"
sh_in "$L" "ln -s $CANARY /workspace/to-canary; ln -s $RDATA /workspace/to-pgdata; ln -s / /workspace/to-root;
            mkdir -p /workspace/d/e; ln -s $CANARY/f /workspace/d/e/f; ln -s $CANARY /workspace/d/e/dir;
            mkdir /workspace/locked; touch /workspace/locked/x; chmod 000 /workspace/locked;
            i=0; while [ \$i -lt 300 ]; do mkdir deep; cd deep; i=\$((i+1)); done; touch leaf" >/dev/null
tap_is "$(stat -c %F "$SROOT/$(object_of "$L")/to-pgdata")" "symbolic link" "the sandbox planted links to a canary and to PGDATA"
release f1
wait_cleanup "$L" success
tap_ok $? "the workspace with links, a locked directory and a 300-deep tree is destroyed"
LG=$(acquire e5 f1)
rm -rf "${SROOT:?}/$(object_of "$LG")"
tap_like "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$LG', 'true')")" \
  '^58030: the environment could not start the command' "a command in a sandbox that is gone (its lease active): 58030"
release f1
tap_is "$(cat "$CANARY/f" 2>&1)" "alive" "...the canary the links pointed at is intact"
tap_ok "$( [ -f "$RDATA/PG_VERSION" ] && [ -f "$RDATA/postgresql.conf" ]; echo $? )" "...and so is the data directory"

# ---------------------------------------------------------------- an image directory
IMG=$PCR_WORK/image
mkdir -p "$IMG/bin" "$IMG/etc"
printf '#include <stdio.h>\nint main(void){puts("from the image");return 0;}\n' >"$PCR_WORK/hello.c"
gcc -static -O2 -o "$IMG/bin/hello" "$PCR_WORK/hello.c" && echo image-os >"$IMG/etc/issue"
chmod -R a+rX "$IMG"
sql "INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
       ('00000000-0000-0000-0000-0000000000b4', '00000000-0000-0000-0000-0000000000c1', 'image', 'sandbox',
        '{\"provider\": \"bwrap\", \"image\": \"$IMG\"}')" >/dev/null
LI=$(acquire b4 f4)
tap_is "$(bexec "$LI" /bin/hello)" "0|from the image
|" "an image directory is the root: its programs run"
tap_is "$(bexec "$LI" /usr/bin/true)" "127||/usr/bin/true: No such file or directory" \
  "...and the host's /usr is not there"
release f4
wait_cleanup "$LI" success

# ---------------------------------------------------------------- probe says what fails
sql "UPDATE paperclip.environments SET config = '{\"provider\": \"bwrap\", \"image\": \"$PCR_WORK/no-image\"}'
      WHERE id = '00000000-0000-0000-0000-0000000000b4'" >/dev/null
tap_is "$(sql "SELECT paperclip.environment_probe('00000000-0000-0000-0000-0000000000b4')->>'summary'")" \
  "image directory \"$PCR_WORK/no-image\" does not exist" "probe: a missing image"
pcr_setting "$RPORT" paperclip_bwrap.bwrap_path /nonexistent/bwrap || exit 1
tap_like "$(sql "SELECT paperclip.environment_probe('00000000-0000-0000-0000-0000000000e5')")" \
  '"ok": false.*bwrap is not installed: \\"/nonexistent/bwrap\\"' "probe: bwrap not installed"
before=$(objects)
tap_like "$(psqlv -c "SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
             '00000000-0000-0000-0000-0000000000e5', '00000000-0000-0000-0000-0000000000f1')")" \
  '^58030: sandbox provider "bwrap" could not create sandbox' "an acquire when bwrap cannot run: 58030, and..."
wait_objects 20 "$before"
tap_ok $? "...the half-made workspace of that failed acquire is destroyed"
pcr_setting_reset "$RPORT" paperclip_bwrap.bwrap_path /usr/bin/bwrap || exit 1
release f2
release f3
wait_objects 20 ""
tap_ok $? "at the end the sandbox root is empty"
tap_is "$(bwrap_procs)" 0 "no sandbox process is left"
