"""Run one command and record its own peak RSS with ``os.wait4``; run it as ``python -S -I``.

Usage: ``python -S -I _spawn_measured.py RESULT_FILE -- ARGV...``

Appends one JSON line to RESULT_FILE: ``rc``, ``maxrss_kib`` (``ru_maxrss`` of the child,
KiB on Linux), ``wall_s``, ``start_monotonic`` (CLOCK_MONOTONIC, comparable between
processes), ``user_s``, ``sys_s``, ``data_only`` (a ``pg_dump --data-only`` stream of a
parallel backup). The exit code is the command's.

Why this trampoline exists: Linux carries a process's peak RSS across ``exec`` (exec_mmap
records the old address space's high-water mark), and Python's subprocess spawns with
vfork/posix_spawn, so a child started straight from a big Python process reports at least
that parent's peak RSS (a ``true`` started from a 300 MB Python process reports 318 MB).
Here the command is forked from this small, stdlib-only process instead, so its
``ru_maxrss`` is its own, with a floor of this process's few MiB (the benchmark measures
and prints that floor). Keep this file's imports before the fork to the bare minimum.
"""

import os
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args or args.index("--") != 1 or len(args) < 3:
        sys.stderr.write("usage: _spawn_measured.py RESULT_FILE -- ARGV...\n")
        return 2
    result_file, argv = args[0], args[2:]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: become the command
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"cannot run {argv[0]}: {exc}\n")
        os._exit(127)
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    record = {"argv0": os.path.basename(argv[0]), "rc": code, "maxrss_kib": usage.ru_maxrss,
              "wall_s": round(wall, 4), "start_monotonic": start,
              "user_s": round(usage.ru_utime, 4), "sys_s": round(usage.ru_stime, 4),
              "data_only": "--data-only" in argv}
    import json  # only now: every module loaded before the fork raises the child's floor

    with open(result_file, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
