"""CIFAR-10 from the official python-pickle batches: download, md5 verification, safe reading.

On-disk format (the "CIFAR-10 python version" of https://www.cs.toronto.edu/~kriz/cifar.html):
the archive ``cifar-10-python.tar.gz`` unpacks to a folder ``cifar-10-batches-py/`` holding
``data_batch_1`` .. ``data_batch_5`` (the 50 000 train images, 10 000 per file), ``test_batch``
(10 000 test images) and ``batches.meta``. Each batch is a pickled dict with the bytes keys

- ``b"data"``: a uint8 numpy array of shape ``(n, 3072)``; each row is one 32x32 colour image,
  the 1024 red values first, then green, then blue, each channel in row-major order. So
  ``data.reshape(n, 3, 32, 32)`` is the image in channels-first layout.
- ``b"labels"``: a list of ``n`` ints in 0..9.
- ``b"batch_label"``: bytes, e.g. ``b"training batch 1 of 5"``.
- ``b"filenames"``: a list of ``n`` bytes.

Every file is checked against its official md5 before it is read (``verify=False`` or custom
``checksums`` exist for test fixtures: ``write_cifar10_fixture`` writes random images in this exact
layout, the archive too, with a ``checksums.json`` of their own md5 sums). An archive
``cifar-10-python.tar.gz`` placed in the root by hand is checked and unpacked, never replaced by a
download; a wrong md5 is a ``ChecksumError`` naming the file. The pickles are read with a *restricted* unpickler that can
rebuild numpy arrays and nothing else: a pickle can run arbitrary code, and a file from the
internet must not.

Images are scaled from uint8 ``u`` in 0..255 to ``x = u / 127.5 - 1`` in [-1, 1]. They are kept in
memory as uint8 (150 MB for the train split instead of 600 MB of float32) and converted per batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from bezkit.files.atomic import atomic_write, atomic_write_bytes

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_ARCHIVE_MD5",
    "CIFAR10_CLASSES",
    "CIFAR10_FILE_MD5",
    "CIFAR10_FOLDER",
    "CIFAR10_SPLIT_FILES",
    "CIFAR10_URL",
    "DOWNLOAD_TIMEOUT_S",
    "CIFAR10Dataset",
    "ChecksumError",
    "UnsafePickleError",
    "download_cifar10",
    "file_md5",
    "read_checksums",
    "read_cifar10_batch",
    "uint8_to_unit_range",
    "unpack_cifar10",
    "write_cifar10_fixture",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
DOWNLOAD_TIMEOUT_S = 60.0  # seconds without an answer before a download gives up
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILE_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3fb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR10_SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

_IMAGE_SHAPE = (3, 32, 32)
_BATCH_KEYS = (b"data", b"labels", b"batch_label", b"filenames")


class ChecksumError(ValueError):
    """A file's md5 does not match the expected one (corrupted, truncated or a different file)."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global (a class or function) outside the numpy allow-list."""


def file_md5(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """The hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: Path, expected: str) -> None:
    actual = file_md5(path)
    if actual != expected:
        raise ChecksumError(
            f"md5 mismatch for {path}: expected {expected}, got {actual}. The file is corrupted, "
            f"truncated or not the official CIFAR-10 file; delete it and download again (a test "
            f"fixture of write_cifar10_fixture: pass its checksums.json, --data-checksums)."
        )


def read_checksums(path: str | Path) -> dict[str, str]:
    """A ``{file name: md5}`` JSON (a fixture's ``checksums.json``), checked for its shape."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the checksums file {path}: {err}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 32 for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of file name -> 32-digit md5")
    return data


# -- safe unpickling ------------------------------------------------------------------------


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 batch pickle may reference: numpy's array reconstruction."""
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, whatever its module
    allowed: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,  # numpy 1.x name (official files)
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # numpy >= 2 name
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes in pickle protocol 2 as _codecs.encode(text, "latin1"): a pure
        # function, needed to read re-saved protocol-2 copies of the batches.
        ("_codecs", "encode"): _latin1_encode,
    }
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only the allowed numpy globals."""

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _allowed_globals()
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}; a CIFAR-10 batch may "
                f"only reference numpy array reconstruction (is this really a CIFAR-10 file?)"
            ) from None


def read_cifar10_batch(
    path: str | Path, *, md5: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file safely; returns ``(images uint8 (n, 3, 32, 32), labels int64 (n,))``.

    ``md5`` (if given) is checked before unpickling. Any malformed content is a ``ValueError``
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
    if md5 is not None:
        _check_md5(path, md5)
    with open(path, "rb") as fh:
        try:
            batch = _NumpyOnlyUnpickler(fh, source=str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as err:  # truncated or garbled: EOFError, ValueError, ...
            raise ValueError(f"{path}: not a readable CIFAR-10 batch pickle ({err!r})") from err
    return _validate_batch(batch, path)


def _validate_batch(batch: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: a CIFAR-10 batch is a dict, got {type(batch).__name__}")
    missing = [k for k in _BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"{path}: CIFAR-10 batch lacks the keys {missing}")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (n, 3072)")
    if data.shape[1] != int(np.prod(_IMAGE_SHAPE)):
        raise ValueError(f"{path}: b'data' rows must have 3072 values, got {data.shape[1]}")
    labels_arr = np.asarray(labels, dtype=np.int64)
    if labels_arr.shape != (data.shape[0],):
        raise ValueError(
            f"{path}: {data.shape[0]} images but {labels_arr.size} labels in b'labels'"
        )
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9")
    return data.reshape(-1, *_IMAGE_SHAPE), labels_arr


def uint8_to_unit_range(images: Tensor) -> Tensor:
    """Map uint8 pixels 0..255 to float32 in [-1, 1]: ``x = u / 127.5 - 1``."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float() / 127.5 - 1.0


# -- download -------------------------------------------------------------------------------


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract only regular files and folders that stay inside ``dest``."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: the standard "data" filter
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(dest.resolve()):
            raise ValueError(f"refusing to extract suspicious archive member {member.name!r}")
    tar.extractall(dest)  # every member was checked above


def download_cifar10(
    root: str | Path,
    *,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_ARCHIVE_MD5,
    force: bool = False,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download and unpack CIFAR-10 under ``root``; returns ``root / "cifar-10-batches-py"``.

    Atomic: the archive is streamed to a temporary file in ``root``, its md5 is checked, then it is
    renamed to ``cifar-10-python.tar.gz``; it is unpacked into a temporary folder that is renamed to
    ``cifar-10-batches-py`` only when complete. An interrupted download leaves no partial dataset;
    a server silent for ``timeout_s`` seconds is an error, not a hang. Does nothing if the folder
    already exists (unless ``force``). An archive already in ``root`` (placed by hand) is checked
    and unpacked, not downloaded again: a wrong md5 is a ``ChecksumError`` (``force`` downloads
    it again).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / CIFAR10_FOLDER
    if folder.is_dir() and not force:
        return folder
    archive = root / CIFAR10_ARCHIVE
    if force or not archive.is_file():

        def fetch(tmp_name: str) -> None:  # checked before atomic_write moves it into place
            with (
                open(tmp_name, "wb") as out,
                urllib.request.urlopen(url, timeout=timeout_s) as response,
            ):
                shutil.copyfileobj(response, out, length=1 << 20)
            if md5 is not None:
                _check_md5(Path(tmp_name), md5)

        atomic_write(archive, fetch)
    return unpack_cifar10(root, md5=md5)


def unpack_cifar10(root: str | Path, *, md5: str | None = CIFAR10_ARCHIVE_MD5) -> Path:
    """Check ``root/cifar-10-python.tar.gz`` against ``md5`` and unpack it (atomically) to
    ``root/cifar-10-batches-py``; returns the folder.

    A folder there before the call is replaced. One that appears *during* it was unpacked by
    another process from the same archive (every rank of a torchrun job finds the archive at
    once): it is kept, never deleted under a rank that is already reading it."""
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    archive = root / CIFAR10_ARCHIVE
    if md5 is not None:
        _check_md5(archive, md5)
    replace = folder.exists()
    tmp_dir = Path(tempfile.mkdtemp(dir=root, prefix=".cifar-10-extract-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            _safe_extract(tar, tmp_dir)
        extracted = tmp_dir / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise ValueError(f"{archive} does not contain a {CIFAR10_FOLDER}/ folder")
        if replace:
            shutil.rmtree(folder)
        try:
            os.rename(extracted, folder)
        except OSError:
            if not (folder / "batches.meta").is_file():
                raise
            # another process unpacked the same archive first: its folder is complete (renamed
            # into place whole), and ranks may already be reading it
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return folder


# -- the dataset ----------------------------------------------------------------------------


class CIFAR10Dataset(Dataset[tuple[Tensor, int]]):
    """CIFAR-10 images in [-1, 1], shape ``(3, 32, 32)``, with optional random horizontal flips.

    Args:
        root: the folder that contains ``cifar-10-batches-py/`` (or that folder itself).
        split: ``"train"`` (data_batch_1..5, 50 000 images) or ``"test"`` (test_batch, 10 000).
        flip: flip each returned image left-right with probability 1/2.
        verify: check each file's md5 before reading it.
        checksums: md5 per file name, replacing the official ones (for test fixtures).
        download: call ``download_cifar10(root)`` first if the folder is missing.

    Attributes:
        data: uint8 ``(n, 3, 32, 32)``; ``labels``: int64 ``(n,)``; ``data_shape``: ``(3, 32, 32)``.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        *,
        flip: bool = True,
        verify: bool = True,
        checksums: Mapping[str, str] | None = None,
        download: bool = False,
    ) -> None:
        if split not in CIFAR10_SPLIT_FILES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        root = Path(root)
        folder = root if root.name == CIFAR10_FOLDER else root / CIFAR10_FOLDER
        known = dict(CIFAR10_FILE_MD5 if checksums is None else checksums)
        if not folder.is_dir() and (root / CIFAR10_ARCHIVE).is_file():
            # an archive placed by hand: checked, then unpacked; never replaced by a download
            md5 = known.get(CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_MD5) if verify else None
            folder = unpack_cifar10(root, md5=md5)
        if not folder.is_dir() and download:
            folder = download_cifar10(root)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"CIFAR-10 folder not found: {folder}. Download it with "
                f"bezkit.data.cifar10.download_cifar10({str(root)!r}) or pass download=True."
            )
        images, labels = [], []
        for name in CIFAR10_SPLIT_FILES[split]:
            expected = None
            if verify:
                if name not in known:
                    raise ValueError(f"no md5 checksum given for {name}")
                expected = known[name]
            x, y = read_cifar10_batch(folder / name, md5=expected)
            images.append(torch.from_numpy(x))
            labels.append(torch.from_numpy(y))
        self.data: Tensor = torch.cat(images)
        self.labels: Tensor = torch.cat(labels)
        self.split = split
        self.flip = flip
        self.root = folder
        self.data_shape: tuple[int, ...] = _IMAGE_SHAPE
        self.name = f"cifar10-{split}"

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = uint8_to_unit_range(self.data[index])
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return image, int(self.labels[index])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images uniformly with replacement, float32 ``(n, 3, 32, 32)`` in [-1, 1],
        each flipped left-right with probability 1/2 if ``flip``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"number of samples n must be a positive int, got {n!r}")
        idx = torch.randint(0, len(self), (n,), generator=generator)
        x = uint8_to_unit_range(self.data[idx])
        if self.flip:
            flips = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        return x

    def __repr__(self) -> str:
        return f"CIFAR10Dataset(split={self.split!r}, n={len(self)}, flip={self.flip})"


def write_cifar10_fixture(
    root: str | Path, *, per_file: int = 4, seed: int = 0, archive: bool = False
) -> Path:
    """Write random images in the official on-disk format (``root/cifar-10-batches-py`` with
    ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``, protocol-2 pickles
    with bytes keys, uint8 rows of 3072 values) for tests and checks without the real data;
    returns the folder. With ``archive`` the folder is packed as the downloaded
    ``root/cifar-10-python.tar.gz`` instead (and not left unpacked). Their md5 sums are not the
    official ones: ``root/checksums.json`` lists them (``CIFAR10Dataset(checksums=...)``,
    ``bezkit images --data-checksums``), or read them with ``verify=False``."""
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    if archive:
        staging = Path(tempfile.mkdtemp(dir=root if root.is_dir() else None, prefix=".fixture-"))
        try:
            inner = write_cifar10_fixture(staging, per_file=per_file, seed=seed)
            sums = read_checksums(staging / "checksums.json")
            tmp = staging / CIFAR10_ARCHIVE
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(inner, arcname=CIFAR10_FOLDER)
            sums[CIFAR10_ARCHIVE] = file_md5(tmp)
            root.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, root / CIFAR10_ARCHIVE)
            _write_checksums(root, sums)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, name in enumerate([*CIFAR10_SPLIT_FILES["train"], *CIFAR10_SPLIT_FILES["test"]]):
        batch = {
            b"batch_label": f"fixture batch {i}".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_file)],
            b"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_file)],
        }
        atomic_write_bytes(folder / name, pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": per_file, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_vis": 3072}  # fmt: skip
    atomic_write_bytes(folder / "batches.meta", pickle.dumps(meta, protocol=2))
    _write_checksums(Path(root), {n: file_md5(folder / n) for n in CIFAR10_FILE_MD5})
    return folder


def _write_checksums(root: Path, sums: Mapping[str, str]) -> None:
    text = json.dumps(dict(sums), indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(root / "checksums.json", text.encode())
