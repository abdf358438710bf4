"""Load MNIST and Fashion-MNIST into memory as ready-to-use tensors.

Both datasets ship as four IDX files (a tiny binary header followed by raw
uint8 bytes), usually gzip-compressed. This module reads them straight into
tensors, flattens each 28x28 image into 784 values, and normalizes the pixels
with the training set's mean and std, all once, up front. Both networks in this
project then train on exactly the same numbers, with no DataLoader in between.

    ds = load_dataset("mnist", "../shared/data")
    ds.x_train.shape  # torch.Size([60000, 784])
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from compare.base.errors import DataError

DATA_ROOT_ENV = "MNIST_DATA_ROOT"


@dataclass(frozen=True)
class DatasetInfo:
    folder: str  # our layout: <root>/<folder>/
    torchvision_folder: str  # torchvision's layout: <root>/<torchvision_folder>/raw/
    classes: tuple[str, ...]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", "MNIST", tuple(str(d) for d in range(10))),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}

# Both datasets use the same file names; split -> (images, labels).
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX magic number: two zero bytes, a type code (0x08 = unsigned byte), then
# the number of dimensions. Only the two kinds these datasets use are accepted.
_IDX_DIMS = {0x00000801: 1, 0x00000803: 3}


def default_data_root() -> Path:
    """The data root: $MNIST_DATA_ROOT if set, else ./data."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (gzip or not) into a uint8 tensor: [N] labels or [N, rows, cols] images."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"Could not read {path}: {e.strerror or e}.") from None
    # Sniff the gzip magic bytes rather than trusting the suffix: renamed files are common.
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path} is a corrupt or incomplete gzip file ({e}); download it again."
            ) from None

    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in _IDX_DIMS:
        found = "too short to have one" if magic is None else f"0x{magic:08x}"
        raise DataError(
            f"{path} is not an MNIST-style IDX file: expected magic number 0x00000801 (labels) "
            f"or 0x00000803 (images), found {found}."
        )
    ndim = _IDX_DIMS[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its {len(raw)} bytes do not even hold the {header}-byte header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "followed by trailing bytes"
        raise DataError(
            f"{path} is {problem}: its header promises shape {shape}, i.e. {expected} bytes "
            f"(uncompressed), but it holds {len(raw)}; replace it with a fresh copy."
        )
    # .copy() gives torch a writable array it owns instead of a view of immutable bytes.
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy())


# Parsed files, keyed by (resolved path, mtime, size) so a changed file is re-read.
_CACHE: dict[tuple[str, int, int], torch.Tensor] = {}


def _read_cached(path: Path) -> torch.Tensor:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = read_idx(path)
    return _CACHE[key]  # shared: callers must never modify it in place


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    return DATASETS[name]


def find_files(name: str, root: str | Path) -> dict[str, tuple[Path, Path]]:
    """Locate the four IDX files of dataset `name` under `root`: {"train": (images, labels), "test": ...}."""
    info, root = _info(name), Path(root)
    candidates = [root / info.folder, root / info.torchvision_folder / "raw", root]
    wanted = [f for pair in FILES.values() for f in pair]
    report = []
    for folder in candidates:
        found = {}
        for f in wanted:
            # Prefer the plain file: torchvision keeps both, and plain is faster to read.
            found[f] = next((p for p in (folder / f, folder / f"{f}.gz") if p.is_file()), None)
        missing = [f for f, p in found.items() if p is None]
        if not missing:
            return {split: (found[img], found[lbl]) for split, (img, lbl) in FILES.items()}
        if not folder.is_dir():
            report.append(f"{folder} (no such folder)")
        else:
            report.append(f"{folder} (missing {'all four' if len(missing) == 4 else ', '.join(missing)})")
    raise DataError(
        f"Could not find the {name} files {', '.join(wanted)} (each plain or .gz). "
        f"Looked in: {'; '.join(report)}."
    )


def _try_download(info: DatasetInfo, root: Path) -> str | None:
    """Let torchvision download into root/<TorchvisionFolder>/raw; return why it failed, or None.

    A failed download leaves nothing behind: the folders it made (root, <TorchvisionFolder>, raw) are
    removed again when they hold no file."""
    made = [p for p in (root, root / info.torchvision_folder, root / info.torchvision_folder / "raw")
            if not p.exists()]
    try:
        import torchvision.datasets as tvd

        # torchvision prints progress bars; keep the user's terminal clean.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            getattr(tvd, info.torchvision_folder)(str(root), train=True, download=True)
        return None
    except Exception as e:  # no internet, a proxy, a full disk: all end the same way
        for folder in reversed(made):  # innermost first; rmdir refuses a folder that holds anything
            with contextlib.suppress(OSError):
                folder.rmdir()
        # torchvision's messages span lines and end with the cause ("Name or service not known").
        cause = (str(e).strip().splitlines() or [""])[-1][:200]
        return f"{type(e).__name__}: {cause}" if cause else type(e).__name__


@dataclass
class Dataset:
    name: str
    classes: tuple[str, ...]
    x_train: torch.Tensor  # [60000, 784] float, normalized with the training mean/std
    y_train: torch.Tensor  # [60000] int64
    x_test: torch.Tensor  # [10000, 784], normalized with the *training* mean/std
    y_test: torch.Tensor  # [10000] int64
    mean: float  # training pixel mean of x/255
    std: float  # training pixel std of x/255
    root: Path  # the folder the files were found in

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> Dataset:
        """A copy with the images converted to `dtype` and everything moved to `device`."""
        return replace(
            self,
            x_train=self.x_train.to(device=device, dtype=dtype),
            y_train=self.y_train.to(device=device),
            x_test=self.x_test.to(device=device, dtype=dtype),
            y_test=self.y_test.to(device=device),
        )


def _pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    # Pixels take only 256 values, so a histogram gives the exact float64 mean
    # and std without making a 376 MB float64 copy of the training set.
    counts = torch.bincount(images.flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    std = ((counts * (values - mean) ** 2).sum() / n).sqrt()
    return mean.item(), std.item()


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    download: bool = True,
    normalize: bool = True,
) -> Dataset:
    """Load dataset `name` ("mnist" or "fashion-mnist") from `root` into memory, flattened and normalized."""
    info = _info(name)
    root = default_data_root() if root is None else Path(root)
    how = (f"Put the four IDX files (gzip or not) in {root / info.folder}, "
           f"or pass --data-root DIR, or set {DATA_ROOT_ENV}=DIR.")
    try:
        files = find_files(name, root)
    except DataError as e:
        if not download:
            raise DataError(f"{e} {how}") from None
        why = _try_download(info, root)
        try:
            files = find_files(name, root)
        except DataError as e2:
            raise DataError(f"{e2} Downloading with torchvision failed too ({why}). {how}") from None

    tensors = {}
    for split, (image_path, label_path) in files.items():
        images, labels = _read_cached(image_path), _read_cached(label_path)
        if images.shape[1:] != (28, 28):
            raise DataError(f"{image_path} should hold 28x28 images but holds data of shape {tuple(images.shape)}.")
        if labels.ndim != 1:
            raise DataError(f"{label_path} should hold labels but holds data of shape {tuple(labels.shape)}.")
        if len(images) != len(labels):
            raise DataError(
                f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels; "
                "they must match, so one of the files is from a different download."
            )
        if len(labels) and int(labels.max()) >= len(info.classes):
            raise DataError(f"{label_path} has label {int(labels.max())}; {name} only has {len(info.classes)} classes.")
        tensors[split] = (images, labels)

    mean, std = _pixel_stats(tensors["train"][0])

    def prepare(images: torch.Tensor) -> torch.Tensor:
        # Move the compact uint8 data first, then do the arithmetic where it will live.
        # Work in at least float32 so half-precision results are rounded only once.
        work = torch.promote_types(dtype, torch.float32)
        x = images.to(device).reshape(len(images), -1).to(work)  # a new tensor: safe to edit in place
        x.div_(255)
        if normalize:
            x.sub_(mean).div_(std)
        return x.to(dtype)

    return Dataset(
        name=name,
        classes=info.classes,
        x_train=prepare(tensors["train"][0]),
        y_train=tensors["train"][1].to(device=device, dtype=torch.int64),
        x_test=prepare(tensors["test"][0]),
        y_test=tensors["test"][1].to(device=device, dtype=torch.int64),
        mean=mean,
        std=std,
        root=files["train"][0].parent,
    )
