"""Writing files safely: nothing half-written where a user or a later run would find it, and
no user file replaced unless asked.

Scratch files and folders carry the writing process's id (``.<name>.partial-<pid>-...``); a
scratch entry whose process is gone (killed mid-write) is removed the next time the same target
is written.
"""

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from zoo.errors import OutputRefused

SCRATCH_MARK = ".partial-"


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_pid(name):
    """The process id in a scratch name (None if `name` is not a scratch entry)."""
    if SCRATCH_MARK not in name:
        return None
    digits = name.split(SCRATCH_MARK, 1)[1].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def remove_stale_scratch(folder, prefix=""):
    """Remove scratch entries under `folder` (starting with `prefix`) left by dead processes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        pid = scratch_pid(entry.name)
        if entry.name.startswith(prefix) and pid is not None and not process_alive(pid):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def scratch_dir(target):
    """A fresh scratch folder beside `target` (same file system, so a rename puts it in place)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(target.parent, f".{target.name}")
    return Path(tempfile.mkdtemp(prefix=f".{target.name}{SCRATCH_MARK}{os.getpid()}-", dir=target.parent))


def check_output(target, force=False, kind="file", replaceable=None):
    """The one rule for every output the zoo writes, checked before any work starts.

    - a folder where a file is wanted (`kind` ``"file"``), or a file where a folder is wanted
      (``"folder"``): refused, with or without `force`;
    - an existing file: refused unless `force`;
    - an existing folder: an empty one is used as it is; one that holds what the zoo writes there
      (``replaceable(path)`` is true: a saved model, a SavedModel) is replaced only with `force`;
      a folder that holds anything else is refused always (it is someone's work);
    - kind ``"container"``: a folder the command writes files of its own naming into
      (``--overlay-dir``, ``--out``): it may exist and hold anything; only a file there is refused.
    """
    target = Path(target)
    if kind not in ("file", "folder", "container"):
        raise ValueError(f"kind must be 'file', 'folder' or 'container', got {kind!r}")
    if not target.exists() and not target.is_symlink():
        return target
    if kind == "container":
        if not target.is_dir():
            raise OutputRefused(f"{target} is a file; this output is a folder: choose another name")
        return target
    if kind == "file":
        if target.is_dir():
            raise OutputRefused(f"{target} is a folder; this output is a file: give a file name (a folder is never "
                                "replaced, not even with --force)")
    else:
        if not target.is_dir():
            raise OutputRefused(f"{target} is a file; this output is a folder: choose another name")
        if not any(target.iterdir()):
            return target
        if replaceable is None or not replaceable(target):
            raise OutputRefused(f"{target} is a folder that holds other files; choose another (new or empty) folder "
                                "(it is never replaced, not even with --force)")
    if not force:
        raise OutputRefused(f"{target} already exists; pass --force (force=True) to replace it, or choose another "
                            "name")
    return target


def replace(scratch, target):
    """Move the finished `scratch` file or folder to `target`, replacing what was there (a
    folder is only replaced by a folder)."""
    scratch, target = Path(scratch), Path(target)
    if target.is_dir() and not target.is_symlink():
        if not scratch.is_dir():
            raise OutputRefused(f"{target} is a folder; refusing to replace it with a file")
        old = target.with_name(f".{target.name}{SCRATCH_MARK}{os.getpid()}-old")
        os.replace(target, old)
        os.replace(scratch, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(scratch, target)
    return target


def scratch_file(target):
    """A fresh scratch file path beside `target` with the same suffix (so writers that go by the
    extension, like matplotlib, still work); move it in place with :func:`replace`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(target.parent, f".{target.name}")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}{SCRATCH_MARK}{os.getpid()}-", suffix=target.suffix,
                                    dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes it private; the finished file gets the usual mode
    return Path(name)


@contextlib.contextmanager
def written_file(target, force=False):
    """``with written_file(path) as scratch:`` write to `scratch`; on success it replaces `target`
    (an existing one only with `force`), on an error it is removed and `target` is untouched."""
    check_output(target, force, "file")
    scratch = scratch_file(target)
    try:
        yield scratch
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    replace(scratch, target)


def partial_rows(target):
    """Where a long command keeps its finished rows while it runs (``<target>.partial.jsonl``,
    beside `target`), so that a crash does not lose them; removed once `target` is written."""
    target = Path(target)
    return target.with_name(f"{target.name}.partial.jsonl")


def append_row(path, row):
    """Append `row` as one JSON line to `path`, on disk before returning (flushed and synced)."""
    import json

    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_text(target, text, force=False):
    """Write `text` to `target` in one step (scratch file, then rename); an existing `target` is
    replaced only with `force`."""
    with written_file(target, force) as scratch:
        scratch.write_text(text)
    return Path(target)


def plain_name(text):
    """`text` as one plain file name: no folder separators, no leading dot, no drive."""
    cleaned = "".join("_" if ch in "/\\:" or ord(ch) < 32 else ch for ch in str(text)).lstrip(".")
    return cleaned or "image"


def name_key(path, depth):
    """The name of `path` at a level of detail: its stem (depth 0), then with its extension
    (1), then with its parent folder (2, 3), two parent folders (4, 5), ... (never the root)."""
    path = Path(path).resolve()
    parents, with_extension = depth // 2, depth % 2 == 1
    name = f"{path.stem}_{path.suffix.lstrip('.')}" if with_extension and path.suffix else path.stem
    folders = [part for part in path.parent.parts if part != path.anchor]
    return "_".join([*(folders[-parents:] if parents else []), name])


def overlay_names(paths, suffix=".attention.png"):
    """A distinct plain file name ``<name><suffix>`` per input (written inside the chosen output
    folder, never elsewhere): the file's stem, or where inputs share it their extension
    (``cat.png``, ``cat.jpg`` -> ``cat_png``, ``cat_jpg``), then their parent folders
    (``a/cat.png``, ``b/cat.png`` -> ``a_cat``, ``b_cat``), then a number."""
    paths = list(paths)
    counts = {}  # depth -> how many inputs have each key: built once per depth (linear, not quadratic)

    def unique(path, depth):
        if depth not in counts:
            counts[depth] = Counter(name_key(q, depth) for q in paths)
        return counts[depth][name_key(path, depth)] == 1

    names = []
    for path in paths:
        for depth in range(0, 2 * len(Path(path).resolve().parts) + 2):
            if unique(path, depth):
                names.append(plain_name(name_key(path, depth)))
                break
        else:  # the same file given twice
            names.append(plain_name(name_key(path, 1)))
    seen = {}
    for i, name in enumerate(names):
        if name in seen:
            seen[name] += 1
            names[i] = f"{name}-{seen[name]}"
        else:
            seen[name] = 1
    return [f"{name}{suffix}" for name in names]
