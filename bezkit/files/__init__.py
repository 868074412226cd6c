"""Files written safely, without torch: atomic writes (temporary file + fsync + rename, the one
JSON writer), output paths checked before any work and the lock that gives one run one output.

Checkpoints, pair shards, caches, results and the course kit all write through this package; it
imports only the standard library and ``filelock``, so writing a file never imports torch.
"""

from bezkit.files.atomic import (
    atomic_write,
    atomic_write_bytes,
    remove_stale_temp_files,
    sha256_file,
    write_json,
)
from bezkit.files.run_dir import (
    OutputPathError,
    RunLock,
    RunLocked,
    check_output_dir,
    check_output_file,
    lock_path_for,
    resolve_output_file,
)

__all__ = [
    "OutputPathError",
    "RunLock",
    "RunLocked",
    "atomic_write",
    "atomic_write_bytes",
    "check_output_dir",
    "check_output_file",
    "lock_path_for",
    "remove_stale_temp_files",
    "resolve_output_file",
    "sha256_file",
    "write_json",
]
