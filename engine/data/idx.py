"""Read and write IDX files, the format of the MNIST data set.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/ ; all integers big-endian):

    bytes 0-1   0x00 0x00
    byte  2     data type code (table below)
    byte  3     number of dimensions, ndim
    then        ndim sizes, each an unsigned 32-bit integer
    then        the data, row-major (C order), each value big-endian

    code  type                 code  type
    0x08  unsigned byte        0x0C  int32
    0x09  signed byte          0x0D  float32
    0x0B  int16                0x0E  float64

A file whose name ends in ``.gz``, or whose first bytes are the gzip signature, is read
through gzip. The library never downloads MNIST; ``load_mnist`` reads files you have.
"""
import gzip
import os
import struct
import zlib

import numpy as np

from engine.checks import check_bool, check_choice, check_dtype


IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}  # native dtype -> code
_GZIP_MAGIC = b"\x1f\x8b"


def _path(name, path):
    """A path (str, bytes or os.PathLike) as str; anything else a TypeError naming the argument."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(path).__name__} {path!r}") from None
    return os.fsdecode(path)


def _open(path, mode):
    """Open path in binary mode, through gzip if it is (or, for writing, is named) .gz."""
    if "w" in mode:
        return gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb")
    with open(path, "rb") as f:
        is_gz = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if is_gz else open(path, "rb")


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a NumPy array.

    Returns: an array of the stored shape (d1, ..., d_ndim) in native byte order, dtype
    uint8, int8, int16, int32, float32 or float64 according to the type code.

    Raises: FileNotFoundError naming the path; ValueError naming the path for a bad magic
    number, an unknown type code, a data size that does not match the header, or gzip data
    that is truncated or corrupt.
    """
    path = _path("path", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with _open(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:   # a truncated or corrupt .gz
        raise ValueError(f"{path}: truncated or corrupt gzip data ({type(e).__name__}: {e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file: the magic number must start with two zero "
                         f"bytes, got {data[:4].hex() or 'an empty file'}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02X}, expected one of "
                         + ", ".join(f"0x{c:02X}" for c in IDX_DTYPES))
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
                         f"the file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: header shape {shape} of {dtype.newbyteorder('=')} needs "
                         f"{expected} data bytes, the file has {len(data) - header}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))   # native byte order, writable copy


def write_idx(path, array):
    """Write ``array`` to an IDX file (gzipped if ``path`` ends in ``.gz``).

    ``array`` must have 1..255 dimensions and dtype uint8, int8, int16, int32, float32 or
    float64 (other dtypes are refused, not cast). ``read_idx(path)`` gives the array back.
    """
    path = _path("path", path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        raise TypeError("array: expected dtype uint8, int8, int16, int32, float32 or "
                        f"float64 for IDX, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array: expected 1 to 255 dimensions for IDX, got shape {array.shape}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array: expected every dimension < 2**32 for IDX, got shape {array.shape}")
    code = _CODE_OF[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    with _open(path, "wb") as f:
        f.write(header + body)


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory, name):
    """Path of ``name`` in directory, also trying ``name.gz`` and the ``-idx`` -> ``.idx``
    spelling some mirrors use; FileNotFoundError listing every path tried."""
    dotted = name.replace("-idx", ".idx")
    tried = [os.path.join(directory, c) for c in (name, name + ".gz", dotted, dotted + ".gz")]
    for path in tried:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"MNIST file {name} not found in {directory}; tried: "
                            + ", ".join(tried))


def load_mnist(directory, kind="train", scaled=True, dtype=np.float64, as_images=False):
    """Load MNIST (or Fashion-MNIST) from the standard IDX files in ``directory``.

    Files: ``{kind}-images-idx3-ubyte`` and ``{kind}-labels-idx1-ubyte`` with ``kind`` =
    "train" (60,000 images) or "t10k" (10,000), each optionally ``.gz``. Nothing is
    downloaded.

    Args:
        scaled: divide the pixels 0..255 by 255 (values in [0, 1]).
        dtype: np.float64 (default; 60,000 images take 376 MB) or np.float32.
        as_images: X as (N, 1, H, W) for Conv2d instead of flat rows (N, H*W).

    Returns: X (N, H*W) or (N, 1, H, W) of dtype, y (N,) int64.
    """
    check_choice("kind", kind, tuple(MNIST_FILES))
    dtype = check_dtype(dtype)
    scaled = check_bool("scaled", scaled)
    as_images = check_bool("as_images", as_images)
    directory = _path("directory", directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    image_name, label_name = MNIST_FILES[kind]
    image_path, label_path = _find(directory, image_name), _find(directory, label_name)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path}: expected images of shape (N, H, W), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{label_path}: expected {images.shape[0]} labels (shape "
                         f"({images.shape[0]},)) to match {image_path}, got {labels.shape}")
    N, H, W = images.shape
    X = images.astype(dtype)
    if scaled:
        X /= 255.0
    X = X.reshape(N, 1, H, W) if as_images else X.reshape(N, H * W)
    return X, labels.astype(np.int64)
