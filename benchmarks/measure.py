"""Run a command as a child process and measure its wall time and peak resident memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float
    output: str


# Linux carries a process's peak RSS across fork + exec (the forked copy of the parent's
# memory counts), so a child of a large benchmark process would report at least the
# parent's size. This small interpreter forks the command itself and reports its peak.
_PEAK_RSS_WRAPPER = """
import os, resource, sys
limit = int(sys.argv.pop(1))
pid = os.fork()
if pid == 0:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(f"PEAK_RSS_KB {usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(
    command: list[str], *, env: dict | None = None, timeout: float | None = None, limit_bytes: int = 0
) -> Measurement:
    """Wall time and peak RSS of ``command`` (and its own children, via wait4).

    ``limit_bytes`` caps the command's address space; past ``timeout`` seconds it is killed.
    Either way, and on any other failure, RuntimeError says what happened.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(limit_bytes), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        raise RuntimeError(f"{' '.join(command)} still running after {timeout:.0f} s: stopped") from None
    seconds = time.perf_counter() - started
    output, _, peak = output.rpartition("PEAK_RSS_KB ")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return Measurement(seconds=seconds, peak_rss_mb=int(peak.split()[0]) / 1024, output=output)


def parse_times(output: str) -> dict[str, float]:
    """The seconds of training and imputation and the epochs a reference runner reported
    (reference_loom.report_times)."""
    return {
        key: float(value) for key, value in (item.split("=") for item in output.split("TIMES ")[-1].split())
    }


def machine() -> dict:
    """The processor's model name (``platform.processor()`` says only x86_64 on Linux), the
    cores this process may use, and Python's version."""
    processor = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            processor = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                processor,
            )
    except OSError:
        pass
    return {"processor": processor, "cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}


def run_header() -> dict:
    """The date and the machine, with which every results file begins."""
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
