"""CIFAR-10 reader: fixtures written by the tests in the official on-disk format."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bezkit.data.cifar10 import (
    CIFAR10_FILE_MD5,
    CIFAR10_FOLDER,
    CIFAR10_SPLIT_FILES,
    ChecksumError,
    CIFAR10Dataset,
    UnsafePickleError,
    download_cifar10,
    file_md5,
    read_cifar10_batch,
)

PER_FILE = 4


def _batch_dict(index: int, n: int, rng: np.random.Generator) -> dict[bytes, object]:
    """One batch exactly as in the official files: bytes keys, uint8 (n, 3072) rows (R, G, B
    planes, row-major), a list of int labels."""
    return {
        b"batch_label": f"fixture batch {index}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{index}_{i}.png".encode() for i in range(n)],
    }


def write_cifar_fixture(root: Path, *, seed: int = 0) -> tuple[Path, dict[str, dict]]:
    """Write ``root/cifar-10-batches-py`` with 5 train batches and a test batch of 4 images each;
    returns the folder and the dicts that were written."""
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written = {}
    for i, name in enumerate([*CIFAR10_SPLIT_FILES["train"], "test_batch"]):
        batch = _batch_dict(i, PER_FILE, rng)
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)  # the official files are protocol-2 pickles
        written[name] = batch
    return folder, written


def fixture_md5s(folder: Path) -> dict[str, str]:
    return {name: file_md5(folder / name) for name in CIFAR10_FILE_MD5}


def test_reads_fixture_in_official_layout(tmp_path: Path) -> None:
    folder, written = write_cifar_fixture(tmp_path)
    ds = CIFAR10Dataset(tmp_path, "train", flip=False, checksums=fixture_md5s(folder))
    assert len(ds) == 5 * PER_FILE
    assert ds.data.shape == (20, 3, 32, 32) and ds.data.dtype == torch.uint8
    # row layout: the first 1024 values are the red plane, row-major
    first = written["data_batch_1"][b"data"][0]
    assert torch.equal(ds.data[0, 0, 0], torch.from_numpy(first[:32]))
    assert torch.equal(ds.data[0, 1, 0, :5], torch.from_numpy(first[1024:1029]))
    assert torch.equal(ds.data[0, 2, 31], torch.from_numpy(first[3072 - 32 :]))
    labels = [v for n in CIFAR10_SPLIT_FILES["train"] for v in written[n][b"labels"]]
    assert ds.labels.tolist() == labels
    # scaling u -> u / 127.5 - 1
    img, label = ds[0]
    assert img.dtype == torch.float32 and label == labels[0]
    assert torch.allclose(img, torch.from_numpy(first.reshape(3, 32, 32)).float() / 127.5 - 1)

    test = CIFAR10Dataset(folder, "test", verify=False)  # the folder itself also works
    assert len(test) == PER_FILE


def test_scaling_endpoints_and_sample_api(tmp_path: Path) -> None:
    folder, written = write_cifar_fixture(tmp_path)
    written["data_batch_1"][b"data"][0, :] = 0
    written["data_batch_1"][b"data"][1, :] = 255
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump(written["data_batch_1"], fh, protocol=2)
    ds = CIFAR10Dataset(tmp_path, flip=False, verify=False)
    assert ds[0][0].min() == -1.0 and ds[0][0].max() == -1.0
    assert ds[1][0].min() == 1.0 and ds[1][0].max() == 1.0

    a = ds.sample(64, torch.Generator().manual_seed(3))
    b = ds.sample(64, torch.Generator().manual_seed(3))
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_flips_are_horizontal_and_about_half(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path)
    plain = CIFAR10Dataset(tmp_path, flip=False, verify=False)
    flipping = CIFAR10Dataset(tmp_path, flip=True, verify=False)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = plain.sample(2000, g1)
    y = flipping.sample(2000, g2)  # same indices (drawn first), then the flip coins
    same = (x == y).flatten(1).all(1)
    mirrored = (x.flip(-1) == y).flatten(1).all(1)
    assert bool((same | mirrored).all())
    frac = mirrored.float().mean().item()
    assert abs(frac - 0.5) < 4 * (0.25 / 2000) ** 0.5  # binomial(2000, 1/2), 4 sigma


def test_bad_md5_is_refused_and_names_file(tmp_path: Path) -> None:
    folder, _ = write_cifar_fixture(tmp_path)
    sums = fixture_md5s(folder)
    data = bytearray((folder / "data_batch_3").read_bytes())
    data[200] ^= 0xFF
    (folder / "data_batch_3").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="data_batch_3"):
        CIFAR10Dataset(tmp_path, checksums=sums)
    # the official checksums never match fixtures
    with pytest.raises(ChecksumError, match="data_batch_1"):
        CIFAR10Dataset(tmp_path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    folder, _ = write_cifar_fixture(tmp_path)
    sums = fixture_md5s(folder)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ChecksumError, match="test_batch"):
        CIFAR10Dataset(tmp_path, "test", checksums=sums)
    with pytest.raises(ValueError, match="test_batch"):  # without md5: the pickle itself fails
        CIFAR10Dataset(tmp_path, "test", verify=False)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused_even_without_md5(tmp_path: Path) -> None:
    folder, written = write_cifar_fixture(tmp_path)
    evil = dict(written["test_batch"])
    evil[b"batch_label"] = _Exploit()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(evil, fh, protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        read_cifar10_batch(folder / "test_batch")
    with pytest.raises(UnsafePickleError):
        CIFAR10Dataset(tmp_path, "test", verify=False)


def test_malformed_batch_is_refused(tmp_path: Path) -> None:
    folder, written = write_cifar_fixture(tmp_path)
    bad = dict(written["test_batch"])
    bad[b"labels"] = bad[b"labels"][:-1]
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(bad, fh, protocol=2)
    with pytest.raises(ValueError, match="labels"):
        read_cifar10_batch(folder / "test_batch")


def test_missing_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download_cifar10"):
        CIFAR10Dataset(tmp_path / "nowhere")


def test_download_is_atomic_and_checked(tmp_path: Path) -> None:
    """``download_cifar10`` against a local file:// archive (no network in tests)."""
    src = tmp_path / "src"
    folder, _ = write_cifar_fixture(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=CIFAR10_FOLDER)
    url = archive.resolve().as_uri()

    root = tmp_path / "data"
    with pytest.raises(ChecksumError):
        download_cifar10(root, url=url)  # the official md5 does not match the fixture
    assert not (root / CIFAR10_FOLDER).exists()
    assert sorted(p.name for p in root.iterdir()) == []  # no partial files left behind

    out = download_cifar10(root, url=url, md5=file_md5(archive))
    assert out == root / CIFAR10_FOLDER
    ds = CIFAR10Dataset(root, checksums=fixture_md5s(folder))
    assert len(ds) == 5 * PER_FILE
    assert download_cifar10(root, url="file:///does/not/exist") == out  # already there


def test_reads_numpy1_era_pickles(tmp_path: Path) -> None:
    """The official files name ``numpy.core.multiarray._reconstruct`` (numpy 1.x); numpy 2 writes
    ``numpy._core``. Both must load."""
    folder, written = write_cifar_fixture(tmp_path)
    raw = (folder / "test_batch").read_bytes()
    assert b"numpy._core.multiarray\n_reconstruct" in raw  # protocol 2: GLOBAL "module\nname\n"
    (folder / "test_batch").write_bytes(raw.replace(b"numpy._core.", b"numpy.core."))
    x, y = read_cifar10_batch(folder / "test_batch")
    assert np.array_equal(x.reshape(PER_FILE, -1), written["test_batch"][b"data"])
    assert y.tolist() == written["test_batch"][b"labels"]


def test_archive_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    root = tmp_path / "data"
    with pytest.raises((ValueError, tarfile.TarError)):
        download_cifar10(root, url=archive.resolve().as_uri(), md5=None)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (root / CIFAR10_FOLDER).exists()


def test_unpacking_keeps_a_folder_another_rank_unpacked_meanwhile(tmp_path, monkeypatch):
    """Every torchrun rank finds a hand-placed archive at once and unpacks it: a rank that
    finishes second must keep the first one's folder (which that rank may already be reading)
    instead of deleting it and putting its own copy in place."""
    import os
    import tarfile

    from bezkit.data import cifar10

    cifar10.write_cifar10_fixture(tmp_path, archive=True)
    folder = tmp_path / cifar10.CIFAR10_FOLDER
    real_extract = cifar10._safe_extract
    first: dict[str, int] = {}

    def extract_while_another_rank_finishes(tar, dest):
        real_extract(tar, dest)
        other = tmp_path / "other-rank"
        with tarfile.open(tmp_path / cifar10.CIFAR10_ARCHIVE, "r:gz") as tar2:
            real_extract(tar2, other)
        os.rename(other / cifar10.CIFAR10_FOLDER, folder)
        first["inode"] = (folder / "data_batch_1").stat().st_ino

    monkeypatch.setattr(cifar10, "_safe_extract", extract_while_another_rank_finishes)
    assert cifar10.unpack_cifar10(tmp_path, md5=None) == folder
    assert (folder / "data_batch_1").stat().st_ino == first["inode"]  # the first rank's files
    assert not list(tmp_path.glob(".cifar-10-extract-*"))  # our own copy was cleaned up
