"""Where results go: checked before any work, written under a temporary name, moved in when complete.

Every step names its outputs and inputs to :func:`check_outputs` before it reads or trains,
so that a mistyped path fails at once and never costs a user data: an output must be in an
existing writable folder, must not be, contain or sit inside one of the inputs, and may
replace only what it is the same kind of (a file replaces a file; a model directory replaces
only a model directory, a chunk folder only a chunk folder). Writing goes through
:func:`atomic_file` and :func:`atomic_directory`: a failed or interrupted step leaves nothing
half-written, and a folder is swapped for its replacement with no moment at which neither exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deepimpute_tool.errors import DeepImputeError, OutputError

FILE, DIRECTORY, FOLDER = "file", "directory", "folder"
RENAME_EXCHANGE = 2
TEMPORARY_SUFFIX_BYTES = len("XXXXXXXX.partial")  # what mkstemp and mkdtemp add after the prefix


@dataclass(frozen=True)
class Output:
    """A path a step will write.

    ``kind``: ``file`` (replaced atomically if it exists), ``directory`` (a whole directory,
    replaced only if ``replaceable`` says the existing one is of the same kind, whose
    ``what`` names it in errors), or ``folder`` (a folder the step writes named files into,
    created if missing, never emptied).
    """

    path: Path
    kind: str = FILE
    replaceable: Callable[[Path], bool] | None = None
    what: str = ""


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_location(output: Output) -> None:
    path = output.path
    parent = path.parent
    if not parent.exists():
        raise OutputError(path, f"cannot be written: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(path, f"cannot be written: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, f"cannot be written: folder {parent} is not writable")
    if path.is_symlink() and not path.exists():
        raise OutputError(path, f"is a symbolic link to {os.readlink(path)}, which does not exist")
    if output.kind != FOLDER:  # a folder of ours is written into, never under a temporary name
        _check_name_length(path)
    if output.kind == FILE and path.is_dir():
        raise OutputError(path, "is a folder; give the name of a file to write")
    if output.kind == FILE and path.exists() and not path.is_file():
        raise OutputError(path, "exists and is not a regular file (a device, a pipe or a socket)")
    if output.kind in (DIRECTORY, FOLDER) and path.exists() and not path.is_dir():
        raise OutputError(path, "exists and is not a folder")
    if output.kind == DIRECTORY and path.exists():
        if path.is_symlink():
            raise OutputError(path, "is a symbolic link; give a new folder name")
        if not (output.replaceable and output.replaceable(path)):
            raise OutputError(
                path,
                f"exists and is not {output.what}; it is replaced only by one of its kind. "
                "Give a new folder name",
            )
    if output.kind == FOLDER and path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(path, "cannot be written: the folder is not writable")


def _check_name_length(path: Path) -> None:
    """The temporary's name (:func:`atomic_file`) must fit where the output's does."""
    try:
        longest = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    needed = len(os.fsencode(f".{path.name}.")) + TEMPORARY_SUFFIX_BYTES
    if needed > longest:
        raise OutputError(
            path,
            f"has a name of {len(os.fsencode(path.name))} bytes; this folder allows "
            f"{longest - TEMPORARY_SUFFIX_BYTES - 2} for an output (its temporary's name is longer)",
        )


def check_outputs(outputs: list[Output], *, inputs: list[str | os.PathLike]) -> None:
    """Raise :class:`OutputError` unless every output can be written without touching an input.

    Checks that each output's folder exists and is writable, that it is of the kind of what
    it would replace, and that no output is, contains or sits inside an input (through
    symbolic links and hard links too), nor another output.
    """
    real_inputs = [(Path(p), _real(Path(p))) for p in inputs if os.path.lexists(p)]
    seen: list[tuple[Path, Path]] = []
    for output in outputs:
        target = _real(output.path)
        for given, real in real_inputs:
            clash = target == real or _inside(target, real)
            if output.kind == DIRECTORY:
                clash = clash or _inside(real, target)
            if not clash and output.path.exists():
                with contextlib.suppress(OSError):
                    clash = os.path.samefile(output.path, given)
            if clash:
                raise OutputError(
                    output.path, f"is, or is inside, the input {given}; give another output path"
                )
        _check_location(output)
        for other, other_real in seen:
            if target == other_real or _inside(target, other_real) or _inside(other_real, target):
                raise OutputError(output.path, f"clashes with the other output {other}")
        seen.append((output.path, target))


def _write_error(path: Path, error: OSError) -> OutputError:
    code = error.errno or _quoted_errno(str(error))
    reason = os.strerror(code) if code else str(error)
    return OutputError(path, f"cannot be written: {reason}")


def _quoted_errno(message: str) -> int | None:
    """The errno that HDF5 quotes in its messages about failed writes (``errno = 27``)."""
    import re

    found = re.search(r"errno = (\d+)", message)
    return int(found.group(1)) if found else None


def _cleanup(temporary: Path) -> None:
    if temporary.is_dir() and not temporary.is_symlink():
        shutil.rmtree(temporary, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            temporary.unlink()


@contextlib.contextmanager
def _written_or_removed(path: Path, temporary: Path) -> Iterator[None]:
    try:
        yield
    except DeepImputeError:
        _cleanup(temporary)
        raise
    except OSError as error:
        _cleanup(temporary)
        raise _write_error(path, error) from None
    except BaseException:
        _cleanup(temporary)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only when the block succeeds.

    An ``OSError`` inside the block (a full disk, a file-size limit) becomes an
    :class:`OutputError` naming ``path``; the temporary file is removed whatever happens.
    """
    path = Path(path)
    parent = path.parent
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
    except OSError as error:
        raise _write_error(path, error) from None
    os.close(handle)
    temporary = Path(name)
    with _written_or_removed(path, temporary):
        temporary.unlink()
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private
        os.replace(temporary, path)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; put it in place of ``path`` when the block succeeds.

    An existing ``path`` (checked replaceable by :func:`check_outputs`) is swapped out in one
    atomic step where the system allows, then removed.
    """
    path = Path(path)
    try:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as error:
        raise _write_error(path, error) from None
    with _written_or_removed(path, temporary):
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private
        if path.is_dir() and not path.is_symlink():
            if not _exchange(temporary, path):
                # no atomic swap here: the old folder steps aside for as short a time as possible
                aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.rmdir(aside)
                os.rename(path, aside)
                os.rename(temporary, path)
                temporary = aside
            shutil.rmtree(temporary, ignore_errors=True)  # the old folder, now under the temporary name
        else:
            os.rename(temporary, path)
