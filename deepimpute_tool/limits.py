"""How much a step may allocate, and the bounds on what a file may declare.

Files on a shared server are strangers' uploads: a few kilobytes can declare a matrix of a
hundred million genes, or gene names a million characters long. Readers check what a file
declares against these bounds and against the memory this process can have *before*
allocating for it; :func:`memory_guard` is the net under those checks: while it is active,
an allocation beyond the budget fails with ``MemoryError`` (which the step reports as one
line naming the file) instead of driving the machine into swap or the out-of-memory killer.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

from deepimpute_tool.errors import InputError

MAX_NAME_CHARACTERS = 1024  # a gene name or a cell ID
MAX_TEXT_BYTES = 65536  # one value of any other text attribute
MAX_MODEL_JSON_BYTES = 256 * 2**20
MAX_WEIGHTS_BYTES = 8 * 2**30
BLOCK_BYTES = 64 * 2**20  # a dense block of cells read or written at a time
GUARD_HEADROOM = 1.0  # the guard allows this many times the available memory, plus what is mapped


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int:
    """Bytes this process can still allocate: free memory, within any cgroup and rlimit."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    limit = _read_int("/sys/fs/cgroup/memory.max") or _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    usage = _read_int("/sys/fs/cgroup/memory.current") or _read_int(
        "/sys/fs/cgroup/memory/memory.usage_in_bytes"
    )
    if limit and usage is not None and limit < 2**60:
        candidates.append(max(limit - usage, 0))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        candidates.append(max(soft - _mapped_bytes(), 0))
    if not candidates:  # not Linux: trust the physical memory
        candidates.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return min(candidates)


def _mapped_bytes() -> int:
    """The address space this process has mapped now (VmSize)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def require_memory(nbytes: float, *, path: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` if allocating ``nbytes`` for ``what`` would exceed the memory left."""
    left = available_memory()
    if nbytes > left:
        raise InputError(
            path,
            f"{what} would need {_size(nbytes)} of memory and this machine has {_size(left)} available",
        )


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


@contextlib.contextmanager
def memory_guard() -> Iterator[None]:
    """Cap this process's address space at what it maps now plus the memory available.

    Only lowered, never raised above an existing limit; restored on exit. Not applied once
    TensorFlow is loaded, whose reservations of address space (GPU memory above all) are not
    allocations.
    """
    import sys

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if "tensorflow" in sys.modules:
        yield
        return
    cap = int(_mapped_bytes() + GUARD_HEADROOM * available_memory())
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
