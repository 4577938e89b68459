"""Writing results so that nothing is lost: checked, claimed and atomically published outputs.

- `check_output` is called before any computation: the folder exists and is writable, the path is
  not a folder, and an existing file is only replaced when the user said so.
- `claim_outputs` holds a lock file beside each output while a run computes and writes it, so a
  second run aimed at the same file fails at once with one line instead of racing the first.
- `atomic_output` writes to a temporary file beside the target and publishes it by rename; without
  overwrite, by a hard link that fails if the file appeared meanwhile. Temporary files and locks
  carry the host and process id, so a later run removes the ones a killed process left behind.
- Files get the mode the user's umask gives any new file (temporary files are created 0600).
- `folder_in_place` does for a new folder (a corpus, a model) what `atomic_output` does for a file.

What `kill -9` can leave: the hidden `.talkinghead-<pid>-*` temporary files and `.<name>.talkinghead-lock`
beside the outputs, until the next run in that folder, which removes them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import uuid
from typing import Iterator

from .errors import OutputError

TEMP_PREFIX = ".talkinghead-"
_TEMP_NAME = re.compile(r"^\.talkinghead-(?P<host>[^-]*)-(?P<pid>\d+)-")
_LOCK_SUFFIX = ".talkinghead-lock"
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (another user's process counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True
    return True


def temp_name(suffix: str = ".part") -> str:
    """A hidden temporary file name owned by this process (host and pid inside, for stale-file cleanup)."""
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}"


def remove_stale_temporaries(folder: str) -> list[str]:
    """Delete temporary files that processes of this host left behind when they died; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            match = _TEMP_NAME.match(entry)
            if match and match["host"] == _HOST and not pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, entry))
                    removed.append(entry)
    return removed


def _check_target(path: str, overwrite: bool, flag: str = "--overwrite") -> str:
    """The absolute path, if its folder exists, it is no folder itself, and it is new or may be replaced."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise OutputError(f"Output folder does not exist: {folder}. Create it or choose another output path.")
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder, not a file. Give a file name for the output.")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{path} already exists; pass {flag} to replace it or choose another output.")
    return path


def check_output(path: str, overwrite: bool, flag: str = "--overwrite") -> str:
    """Refuse, before any work, an output that cannot or must not be written; returns its absolute path."""
    path = _check_target(path, overwrite, flag)
    folder = os.path.dirname(path)
    probe = os.path.join(folder, temp_name(".probe"))  # trying is the only sure test (root, ACLs, read-only mounts)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"Cannot write in {folder} ({_reason(exc)}). Choose a folder you can write to.") from None
    return path


def _lock_path(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{_LOCK_SUFFIX}")


def _take_lock(path: str) -> str:
    lock = _lock_path(path)
    for _ in range(2):  # the second try after removing a dead process's lock
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and owner[0] == _HOST and not pid_alive(owner[1]):
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                continue
            who = f"process {owner[1]} on {owner[0]}" if owner else "another run"
            raise OutputError(f"{path} is being written by {who} right now; wait for it, or choose another output. "
                              f"(If no run is writing it, delete {lock}.)") from None
        except OSError as exc:
            raise OutputError(f"Cannot write in {os.path.dirname(lock)} ({_reason(exc)}). "
                              "Choose a folder you can write to.") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{_HOST} {os.getpid()}\n")
        return lock
    raise OutputError(f"{path} is locked by {lock}; delete it if no run is writing that file.")


def _lock_owner(lock: str) -> tuple[str, int] | None:
    try:
        with open(lock, encoding="utf-8") as handle:
            host, pid = handle.read().split()[:2]
        return host, int(pid)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def claim_outputs(paths: list[str]) -> Iterator[None]:
    """Hold a lock beside each output for the block: a concurrent run for one of them fails at once.
    Locks of dead processes on this host are taken over; locks are removed on the way out, also on
    errors, Ctrl-C and SIGTERM (see `terminate_cleanly`)."""
    locks: list[str] = []
    try:
        for path in paths:
            remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
            locks.append(_take_lock(path))
        yield
    finally:
        for lock in locks:
            with contextlib.suppress(OSError):
                os.unlink(lock)


def publish(temp: str, path: str, overwrite: bool) -> None:
    """Move a finished temporary file to `path`: by rename when replacing is allowed, otherwise by a
    hard link that fails if `path` appeared meanwhile (so a concurrent result is never replaced)."""
    with contextlib.suppress(OSError):
        os.chmod(temp, _FILE_MODE)
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise OutputError(f"{path} appeared while this run was writing it (another run?); it was kept. "
                          f"Pass --overwrite to replace it or choose another output.") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):  # a file system without hard links: check, then rename
            raise OutputError(f"{path} appeared while this run was writing it; it was kept.") from None
        os.replace(temp, path)
        return
    os.unlink(temp)


_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only", errno.EISDIR: "it is a folder",
            errno.EFBIG: "the file would exceed the size this system allows"}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def describe_write_error(exc: OSError, path: str) -> OutputError:
    """One line for a failed write (disk full, permissions, ...), saying that nothing was left."""
    return OutputError(f"Could not write {path}: {_reason(exc)}. Nothing was written there; free space or choose "
                       "another output.")


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "wb", overwrite: bool = True) -> Iterator:
    """Open a temporary file beside `path`; it becomes `path` only if the block finishes. Without
    `overwrite` an existing `path` is never replaced."""
    path = _check_target(path, overwrite)
    folder = os.path.dirname(path)
    remove_stale_temporaries(folder)
    temp = os.path.join(folder, temp_name())
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise describe_write_error(exc, path) from None
    try:
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
        except OSError as exc:
            raise describe_write_error(exc, path) from None
        publish(temp, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def folder_in_place(out: str) -> Iterator[str]:
    """Yield OUT.partial to build a new folder in; it becomes `out` only if the block finishes, and
    is removed if it fails, so a failure half-way leaves neither. `out` must not exist yet or be an
    empty folder (callers refuse anything else before their work starts)."""
    partial = out.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a killed run left
    try:
        yield partial
        if os.path.isdir(out):
            os.rmdir(out)  # the empty folder it replaces
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def terminate_cleanly() -> None:
    """Turn SIGTERM into KeyboardInterrupt in the main thread, so `finally` blocks remove temporary
    files and locks when a farm's scheduler stops a run (SIGINT already does this)."""
    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError, OSError):  # not the main thread, or no signals here
        signal.signal(signal.SIGTERM, interrupt)
