"""Output files appear whole or not at all.

Every writer writes to a temporary file in the destination folder (same suffix, so
format-by-extension libraries still pick the right codec) and renames it into place;
on any error the temporary file is removed. :func:`check_output_path` runs the cheap
checks (folder exists and is writable, no silent overwrite) before any work is done;
:func:`check_outputs` adds the checks across a job's outputs (no output is an input, not
even with ``--overwrite``; no two outputs are the same file). :func:`output_transaction`
makes a job's several outputs appear together or not at all.

Temporary files start with :data:`TEMP_PREFIX`. Python removes them on errors, Ctrl-C
and SIGTERM (the CLI turns SIGTERM into an exception); only SIGKILL or a power loss
leaves one behind, recognisable by its name (:func:`remove_stale_temps`; ``hdr fuse`` and
``hdr expand`` remove those older than an hour from their output folders,
:func:`remove_abandoned_temps`).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hdrcli.errors import HdrError


TEMP_PREFIX = ".hdrcli-tmp-"
"""Every temporary file hdrcli creates starts with this, so stale ones (after SIGKILL or a
power loss) can be recognised and removed (``hdr batch`` does so at start; ``hdr fuse`` and
``hdr expand`` remove those older than :data:`STALE_TEMP_AGE_S`)."""

NAME_MAX = 255  # bytes in one file name on Linux/macOS file systems (ext4, APFS, tmpfs, ...)
_TEMP_STEM_CHARS = 24  # temp names keep only the start of the output's stem: they must fit NAME_MAX too



@dataclass
class Transaction:
    """State of one :func:`output_transaction`: finished temporary files waiting for their
    rename (temp, final path, whether the final path existed before) and folders it created."""

    renames: list[tuple[Path, Path, bool]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


# The output transaction running in this thread/context (None: atomic_path renames at once).
_TRANSACTION: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "hdrcli_output_transaction", default=None
)
# errno values that mean "this output cannot be written": reported as one line naming the file.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                 errno.ENAMETOOLONG)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX


def _check_name(path: Path, folder: Path) -> None:
    size = len(os.fsencode(path.name))
    limit = _name_max(folder) if folder.is_dir() else NAME_MAX
    if size > limit:
        raise HdrError(f"file name too long ({size} bytes; the file system allows {limit})", path)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file: equal after resolving symlinks, or
    (when both exist) the same device and inode, which also catches hard links."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError, ValueError):  # symlink loop, NUL in the name
        pass
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except (OSError, ValueError):
        return False


def _input_files(inputs: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        files.append(path)
        try:
            if path.is_dir():  # a scene folder: every file in it is an input
                files.extend(Path(e.path) for e in os.scandir(path) if e.is_file())
        except (OSError, ValueError):
            pass
    return files


def check_outputs(
    outputs: Iterable[str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> list[Path]:
    """Check all the outputs of one job before any work is done; returns them as Paths.

    Refused, even with ``overwrite``: an output that is an input (same path after
    resolving symlinks, or the same file through a hard link), and two outputs that are
    the same file (e.g. ``--save-crf`` equal to the output). Then each output goes
    through :func:`check_output_path` (folder exists and is writable, an existing file
    is replaced only with ``overwrite``, the name fits the file system).
    """
    outs = [Path(p) for p in outputs if p is not None]
    ins = _input_files(inputs)
    for out in outs:
        for source in ins:
            if same_file(out, source):
                raise HdrError(f"output is an input file ({source}); inputs are never replaced, not even with --overwrite",
                               out)
    for i, out in enumerate(outs):
        for earlier in outs[:i]:
            if same_file(out, earlier):
                raise HdrError(f"two outputs of this job are the same file ({earlier})", out)
    for out in outs:
        check_output_path(out, overwrite)
    return outs


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Fail early, with one clear line, when ``path`` cannot be written.

    Checks that the parent folder exists, is a folder and accepts a new file (by creating
    and removing a probe file: permission bits alone are not enough, e.g. as root or on a
    read-only mount), that the file name fits the file system, that ``path`` is not a
    folder or a special file (device, FIFO), and that it does not exist unless ``overwrite``.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if not parent.exists():
            raise HdrError("output folder does not exist", parent)
        if not parent.is_dir():
            raise HdrError("output folder is not a folder", parent)
        _check_name(path, parent)
        if path.is_dir():
            raise HdrError("output path is a folder", path)
        if path.exists() and not path.is_file():
            raise HdrError("output path exists and is not a regular file", path)
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise HdrError("output file exists (use --overwrite to replace it)", path)
        with _signals_deferred():
            fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX + "probe-", dir=parent)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise HdrError("path too long for the file system", path) from None
        raise HdrError(f"output folder is not writable ({exc.strerror or exc})", parent) from None
    except ValueError as exc:  # NUL byte in the name
        raise HdrError(f"invalid output path ({exc})", path) from None
    return path


STALE_TEMP_AGE_S = 3600.0
"""Seconds since its last write after which a temporary file belongs to no running job: a
job's temps live from its first output's write to its renames (seconds; a minute at most for
24 MP with every output), so an hour-old one was left by a killed process."""


def find_stale_temps(folder: str | os.PathLike[str], older_than: float = 0.0) -> list[Path]:
    """Temporary files left in ``folder`` (not recursive) by an hdrcli that was killed (SIGKILL),
    last written at least ``older_than`` seconds ago (0: all). Symbolic links are never listed."""
    now = time.time()
    found = []
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith(TEMP_PREFIX) and e.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        if now - e.stat(follow_symlinks=False).st_mtime >= older_than:
                            found.append(Path(e.path))
    except OSError:
        return []
    return sorted(found)


def remove_stale_temps(folder: str | os.PathLike[str], older_than: float = 0.0,
                       keep: Iterable[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """Remove :func:`find_stale_temps` of ``folder`` except the files in ``keep`` (a job's
    inputs: never removed, whatever their name); returns the files removed."""
    kept = _input_files(keep)
    removed = []
    for path in find_stale_temps(folder, older_than):
        if any(same_file(path, k) for k in kept):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def remove_abandoned_temps(outputs: Iterable[str | os.PathLike[str] | None],
                           inputs: Iterable[str | os.PathLike[str] | None] = ()) -> list[Path]:
    """Before a job writes ``outputs``: remove the temporary files older than
    :data:`STALE_TEMP_AGE_S` in their folders (left there by a killed hdrcli; younger ones may
    belong to a job running now), never an input. Returns the files removed."""
    folders: dict[Path, None] = {}
    for out in outputs:
        if out is not None and Path(out).parent.is_dir():
            folders[Path(out).parent.resolve()] = None
    return [p for folder in folders for p in remove_stale_temps(folder, STALE_TEMP_AGE_S, inputs)]


def _temp_path(path: Path) -> Path:
    # Only a short piece of the stem: an output name near NAME_MAX must still get a temp name.
    suffix = path.suffix if len(os.fsencode(path.suffix)) <= 16 and _encodable(path.suffix) else ""
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", path.stem[:_TEMP_STEM_CHARS])  # plain ASCII: see _encodable
    try:
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f"-{stem}{suffix}", dir=path.parent or ".")
    except OSError as exc:
        raise HdrError(f"could not write file ({exc.strerror or exc})", path) from None
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for a few system calls (creating and recording a temp file,
    renaming outputs), so that the exception they raise (KeyboardInterrupt, Terminated)
    arrives where the clean-up knows every temp file. POSIX only; elsewhere a no-op."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _encodable(text: str) -> bool:
    """True when ``text`` is valid UTF-8 text. A file name with undecodable bytes reaches
    Python as surrogates, which native writers cannot take (OpenEXR refuses it, OpenCV's
    imwrite crashes with a segmentation fault)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _write_error(path: Path, exc: BaseException) -> HdrError | None:
    """A one-line error for a writer failure caused by the destination (disk full, no
    permission...), or None when ``exc`` looks like a bug."""
    if isinstance(exc, OSError):
        return HdrError(f"could not write file ({exc.strerror or exc})", path)
    text = str(exc)
    for code in _WRITE_ERRNOS:
        if os.strerror(code) in text:  # e.g. OpenEXR's RuntimeError "... No space left on device."
            return HdrError(f"could not write file ({os.strerror(code)})", path)
    with contextlib.suppress(OSError):
        stat = os.statvfs(path.parent or ".")
        if stat.f_bavail * stat.f_frsize < 1 << 20:  # OpenCV's encoders only return False on a full disk
            return HdrError(f"could not write file ({os.strerror(errno.ENOSPC)})", path)
    return None


def _rename_into_place(tmp: Path, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
    os.replace(tmp, path)


@contextlib.contextmanager
def output_transaction() -> Iterator[Transaction]:
    """All-or-nothing outputs for one job.

    Inside the block, :func:`atomic_path` leaves each finished temporary file in place;
    when the block ends without an exception they are all renamed into place, in the
    order written. On any exception (including KeyboardInterrupt and SIGTERM through
    :class:`hdrcli.errors.Terminated`) every temporary file is removed and no output
    appears. If a rename fails half-way (e.g. the folder was removed), outputs already
    renamed that did not exist before are removed again.
    """
    state = Transaction()
    pending = state.renames
    token = _TRANSACTION.set(state)
    committed = False
    deferred = None
    try:
        yield state
        _TRANSACTION.reset(token)
        token = None
        done: list[tuple[Path, bool]] = []
        deferred = _signals_deferred()  # the renames run to the end: a job done is not half-undone
        deferred.__enter__()
        for tmp, path, existed in list(pending):
            try:
                _rename_into_place(tmp, path)
            except OSError as exc:
                for renamed, had in done:
                    if not had:
                        with contextlib.suppress(OSError):
                            renamed.unlink()
                raise HdrError(f"could not write file ({exc.strerror or exc})", path) from None
            done.append((path, existed))
        committed = True
    finally:
        if token is not None:
            _TRANSACTION.reset(token)
        for tmp, _, _ in pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if not committed:
            for folder in reversed(state.folders):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: never removes anything else
        if deferred is not None:
            deferred.__exit__(None, None, None)  # a signal held during the renames arrives now


def make_output_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and missing parents) for outputs; inside :func:`output_transaction`
    the folders created are removed again (when empty) if the job fails."""
    folder = Path(folder)
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HdrError(f"cannot create folder ({exc.strerror or exc})", folder) from None
    state = _TRANSACTION.get()
    if state is not None:
        state.folders.extend(reversed(missing))
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary name is ``.hdrcli-tmp-XXXXXXXX-<first 24 characters of the stem><suffix>``
    (the suffix is kept so that libraries choosing the codec by extension still work).
    Inside :func:`output_transaction` the rename waits for the end of the transaction.
    """
    path = Path(path)
    tmp: Path | None = None
    staging: Path | None = None
    state = _TRANSACTION.get()
    pending = state.renames if state is not None else None
    try:
        with _signals_deferred():  # a temp file exists only once `finally` knows it
            tmp = _temp_path(path)
            # A folder name that is not UTF-8: the writer gets a staging file in the system temp
            # folder, copied beside the output afterwards (the rename must stay in one file system).
            if not _encodable(str(tmp)):
                staging = _temp_path(Path(tempfile.gettempdir()) / ("x" + path.suffix))
        yield staging or tmp
        if staging is not None and staging.exists():
            shutil.copyfile(staging, tmp)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise HdrError("writer produced no data", path)
        with _signals_deferred():
            if pending is not None:
                pending.append((tmp, path, path.exists()))
                tmp = None  # the transaction renames or removes it
            else:
                _rename_into_place(tmp, path)
    except HdrError as exc:
        raise (_write_error(path, exc) or exc) from None
    except Exception as exc:  # noqa: BLE001 - a full disk reaches us as OSError, RuntimeError or cv2.error
        error = _write_error(path, exc)
        if error is None:
            raise
        raise error from None
    finally:
        for leftover in (tmp, staging):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()


@contextlib.contextmanager
def private_scratch() -> Iterator[Path]:
    """Run a block with every library's scratch space in a private folder, removed afterwards.

    Some libraries write files of their own where TMPDIR points (onnxruntime 1.31's telemetry SDK
    leaves ``$TMPDIR/.ses`` when it loads; torch's ONNX export fills ``$TMPDIR/torchinductor_USER``)
    and hdrcli writes only where the user said. For the block, TMPDIR (C and C++ code), Python's
    ``tempfile`` and torch inductor's cache point at a fresh folder, which is removed at the end.
    """
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "scratch-"))
    names = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")
    saved_env = {name: os.environ.get(name) for name in names}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)
