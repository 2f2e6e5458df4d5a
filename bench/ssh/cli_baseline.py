"""bench/ssh/cli_baseline.py — the command-line path the control plane uses today.

Usage: cli_baseline.py N KEY PORT USER KNOWN_HOSTS WORKSPACE_PREFIX CANDIDATE

Runs N times, one fresh `ssh -o BatchMode=yes` each, the remote command
    mkdir -p <path> && cd <path> && pwd && curl -fsS <candidate>/api/health
and prints each wall-clock latency in milliseconds, one per line.  Both
commands go through one ssh invocation (the cheaper form of the baseline).
"""
import shlex
import subprocess
import sys
import time


def main():
    n, key, port, user, known_hosts, prefix, candidate = sys.argv[1:8]
    for i in range(int(n)):
        path = f"{prefix}/cli-{i}"
        remote = (f"mkdir -p {shlex.quote(path)} && cd {shlex.quote(path)} && pwd && "
                  f"curl -fsS {shlex.quote(candidate + '/api/health')}")
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={known_hosts}", "-o", "IdentitiesOnly=yes",
               "-i", key, "-p", port, f"{user}@127.0.0.1", remote]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        t1 = time.perf_counter()
        if out.returncode != 0 or path not in out.stdout:
            sys.exit(f"baseline ssh failed ({out.returncode}): {out.stderr.strip()}")
        print(f"{(t1 - t0) * 1000:.3f}")


if __name__ == "__main__":
    main()
