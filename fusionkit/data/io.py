"""Image files <-> float32 RGB tensors in [0, 1], channel first, through imageio (RAW camera files through rawpy)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import FusionkitError, FusionkitWarning, param
from ..files import atomic_path
from .errors import DataOptionError, ImageFileError

#: File name endings of the images datasets hold and the writers write, compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
#: Camera RAW file name endings :func:`read_image` also accepts, with the ``raw`` extra (rawpy). Kept out of
#: ``IMAGE_EXTENSIONS``: a camera shooting RAW+JPEG leaves both beside each other, which would double every scene.
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")
#: Most pixels a file may declare, checked from its header before decoding: 120 MP admits the largest
#: 100 MP cameras (11656x8742) and costs 1.4 GB as float32 RGB; a crafted file declaring gigapixels is refused.
DEFAULT_MAX_PIXELS = 120_000_000
#: Overrides the limit (0: none); ``fusionkit --max-pixels N`` sets it for the command.
MAX_PIXELS_ENV = "FUSIONKIT_MAX_PIXELS"
# Our limit replaces Pillow's guard, which warns on a 100 MP photo and refuses one above 179 MP whatever ours says.
Image.MAX_IMAGE_PIXELS = None

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OPENCV_HINT = "16-bit colour PNG needs OpenCV (pip install opencv-python-headless), or use 16-bit TIFF"
_RAWPY_HINT = "RAW files need rawpy (pip install 'fusionkit[raw]')"
#: EXIF/TIFF orientation -> the flips and turns that show the stored pixels upright (as a viewer shows them).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a),
}


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a JPEG, PNG or TIFF file: what datasets hold (RAW files: :func:`is_raw_file`)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_raw_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a camera RAW file, which :func:`read_image` decodes through rawpy."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def read_image(path: str | os.PathLike) -> Tensor:
    """Decode ``path`` to float32 (3, H, W) in [0, 1].

    8-bit files are divided by 255, 16-bit PNG/TIFF by 65535; grey becomes three equal channels;
    an alpha channel is dropped as it is (not composited on any background); the EXIF/TIFF orientation is
    applied. RAW files are developed as the camera shot them (its white balance, no brightening, sRGB).
    """
    path = Path(path)
    return pixels_to_tensor(decode_pixels(path), path)


def decode_pixels(path: Path) -> np.ndarray:
    """The file's pixels as decoded, (H, W) or (H, W, C); a missing or unreadable file is an :class:`ImageFileError`."""
    try:
        _check_size(path)
        return _decode(path)
    except FusionkitError:
        raise
    except FileNotFoundError:
        raise ImageFileError(f"image file not found: {path}") from None
    except MemoryError:
        raise ImageFileError(f"out of memory decoding {path} ({_size_text(path)}): the file is fine; free memory, "
                             "or fuse fewer or smaller photos at a time") from None
    except Exception as exc:  # imageio and its plugins raise many types for bad data
        raise ImageFileError(f"cannot read image {path}: {_reason(exc)}") from None


def pixels_to_tensor(array: np.ndarray, path: Path, out: Tensor | None = None) -> Tensor:
    """Decoded pixels -> float32 (3, H, W) in [0, 1] (see :func:`read_image`), written into ``out`` if given."""
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:  # the common case: one pass in torch
        out = torch.empty(3, *array.shape[:2]) if out is None else out
        return out.copy_(torch.from_numpy(array).permute(2, 0, 1)).div_(255)
    chw = torch.from_numpy(_to_chw_float(array, path))
    return chw if out is None else out.copy_(chw)


def write_image(path: str | os.PathLike, image: Tensor, bits: int = 8, quality: int = 95) -> Path:
    """Write a (3, H, W) or (H, W) tensor in [0, 1] (clamped) as PNG, JPEG or TIFF, atomically.

    ``bits=16`` is for PNG and TIFF only, ``bits=32`` (float32, still clamped to [0, 1]) for TIFF only;
    ``quality`` applies to JPEG.
    """
    if bits not in (8, 16, 32):
        raise ImageFileError(f"cannot write {path}: {param('bits')} must be 8, 16 or 32, got {bits}")
    levels = image.detach().float().cpu().clamp(0, 1)
    if levels.ndim == 3:
        levels = levels.permute(1, 2, 0)
    if bits == 32:
        return write_array(path, levels.contiguous().numpy(), quality=quality)
    # Rounded in torch (float32, then int32 for the 16-bit range torch's uint16 cannot cast from
    # everywhere); one copy converts and moves channels last: numpy on a transposed view takes seconds at 24 MP.
    levels = levels.mul_(65535 if bits == 16 else 255).add_(0.5)
    pixels = torch.empty(levels.shape, dtype=torch.int32 if bits == 16 else torch.uint8).copy_(levels).numpy()
    return write_array(path, pixels.astype(np.uint16) if bits == 16 else pixels, quality=quality)


def write_array(path: str | os.PathLike, pixels: np.ndarray, quality: int = 95) -> Path:
    """Write (H, W) or (H, W, 3) uint8, uint16 or float32 pixels as they are (PNG, JPEG or TIFF), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ImageFileError(f"cannot write {path}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if pixels.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageFileError(f"cannot write {path}: pixels must be uint8, uint16 or float32, got {pixels.dtype}")
    if pixels.dtype == np.uint16 and suffix in (".jpg", ".jpeg"):
        raise ImageFileError(f"cannot write {path}: JPEG is 8-bit only; use .png or .tif for 16 bits")
    if pixels.dtype == np.float32 and suffix not in (".tif", ".tiff"):
        raise ImageFileError(f"cannot write {path}: 32-bit float is TIFF only; use .tif or .tiff")
    with atomic_path(path) as tmp:
        _encode(tmp, suffix, pixels, quality)
    return path


def max_pixels() -> int | None:
    """The pixel limit in effect (None: no limit), read from the environment on each call so the CLI option applies."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit():
        raise DataOptionError(f"{MAX_PIXELS_ENV}={text}: give a whole number of pixels, or 0 for no limit")
    return int(text) or None


def _check_size(path: Path) -> None:
    """Refuse a file declaring more pixels than :func:`max_pixels` before decoding it, so it cannot exhaust memory."""
    limit = max_pixels()
    if limit is None:
        return
    width, height, images = _declared_size(path)
    if width * height * images > limit:
        stack = f" in each of {images} images" if images > 1 else ""
        raise ImageFileError(
            f"cannot read image {path}: it declares {width}x{height} pixels{stack}, more than the limit of {limit:,}; "
            f"raise it with {param('max_pixels')} N or {MAX_PIXELS_ENV}=N (0: no limit)"
        )


def _declared_size(path: Path) -> tuple[int, int, int]:
    """(width, height, images) from the file's header: what :func:`_decode` would decode, without decoding it."""
    if is_raw_file(path):
        with _rawpy(path).imread(str(path)) as raw:
            return raw.sizes.width, raw.sizes.height, 1
    if path.suffix.lower() in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]  # the series the tifffile plugin reads
            page = series.keyframe
            return page.imagewidth, page.imagelength, series.size // page.size
    with Image.open(path) as image:
        animated = image.format == "GIF" or image.custom_mimetype == "image/apng"  # imageio decodes all their frames
        return image.width, image.height, image.n_frames if animated else 1


def _size_text(path: Path) -> str:
    """``WxH`` as the file's header declares it, for a message; ``size unknown`` where the header cannot say."""
    try:
        width, height, _ = _declared_size(path)
    except Exception:  # only ever used while reporting another failure
        return "size unknown"
    return f"{width}x{height}"


def _decode(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if is_raw_file(path):
        return _develop(path)
    if suffix in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tiff:
            orientation = tiff.series[0].keyframe.tags.valueof(274, 1)  # tifffile leaves it to the viewer
        pixels = iio.imread(path, plugin="tifffile")
        return np.ascontiguousarray(_UPRIGHT[orientation](pixels)) if orientation in _UPRIGHT else pixels
    if suffix == ".png" and _is_16bit_colour_png(path):
        cv2 = _opencv(path)
        # Any depth and colour, not "unchanged", which ignores the EXIF orientation; alpha is dropped anyway.
        return iio.imread(path, plugin="opencv", flags=cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    # Shown as a viewer shows it: EXIF orientation applied, CMYK (print) JPEGs converted to RGB.
    cmyk = suffix in (".jpg", ".jpeg") and iio.immeta(path, plugin="pillow").get("mode") == "CMYK"
    return iio.imread(path, plugin="pillow", rotate=True, **({"mode": "RGB"} if cmyk else {}))


def _develop(path: Path) -> np.ndarray:
    """A RAW file's 16-bit sRGB pixels: the camera's white balance and LibRaw's own orientation, without the
    automatic brightening that would even out the exposures of a bracket."""
    with _rawpy(path).imread(str(path)) as raw:
        return raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16, gamma=(2.4, 12.92))


def _rawpy(path: Path):
    try:
        import rawpy
    except ImportError:
        raise ImageFileError(f"cannot read {path}: {_RAWPY_HINT}") from None
    return rawpy


def _encode(tmp: Path, suffix: str, pixels: np.ndarray, quality: int) -> None:
    if suffix in (".tif", ".tiff"):
        iio.imwrite(tmp, pixels, plugin="tifffile", extension=suffix)
    elif pixels.dtype == np.uint16 and pixels.ndim == 3:
        ok, encoded = _opencv(tmp).imencode(suffix, np.ascontiguousarray(pixels[..., ::-1]))  # OpenCV is BGR
        if not ok:
            raise ImageFileError(f"OpenCV could not encode a 16-bit {suffix} image")
        tmp.write_bytes(encoded.tobytes())
    elif suffix in (".jpg", ".jpeg"):
        iio.imwrite(tmp, pixels, plugin="pillow", extension=suffix, quality=quality)
    else:
        iio.imwrite(tmp, pixels, plugin="pillow", extension=suffix)


def _is_16bit_colour_png(path: Path) -> bool:
    """Pillow silently reads 16-bit RGB(A) PNG as 8-bit, so those go to OpenCV (header bytes 24-25)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == _PNG_SIGNATURE and len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)


def _opencv(path: Path):
    try:
        import cv2
    except ImportError:
        raise ImageFileError(f"cannot handle {path}: {_OPENCV_HINT}") from None
    return cv2


def _to_chw_float(array: np.ndarray, path: Path) -> np.ndarray:
    """Decoded pixels -> contiguous float32 (3, H, W) in [0, 1]: grey (+ alpha) repeated, alpha dropped."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageFileError(f"cannot read image {path}: unsupported shape {array.shape} (one still image expected)")
    rgb = array[:, :, [0, 0, 0]] if array.shape[2] <= 2 else array[:, :, :3]
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    if array.dtype == np.uint8:
        chw /= 255
    elif array.dtype == np.uint16:
        chw /= 65535
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(chw).all():  # NaN would turn the whole fusion black through the pyramid
            raise ImageFileError(f"cannot use image {path}: it holds non-finite pixel values (NaN or infinity)")
        if chw.size and chw.max() > 1:
            warnings.warn(f"{path}: float pixels reach {chw.max():.4g}, above 1; they are clipped to 1 "
                          "(float images are read as 0..1)", FusionkitWarning, stacklevel=2)
        np.clip(chw, 0, 1, out=chw)
    elif array.dtype != np.bool_:
        raise ImageFileError(f"cannot read image {path}: unsupported pixel type {array.dtype}")
    return chw


def _reason(exc: BaseException) -> str:
    """One line saying why decoding failed; imageio wraps the decoder's own reason as the cause."""
    if exc.__cause__ is not None and "unknown error occurred" in str(exc):
        exc = exc.__cause__
    said = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)  # LibRaw
    text = said.strip().splitlines()[0] if said.strip() else type(exc).__name__
    unknown = text.startswith("Could not find a backend") or "can not handle the given uri" in text
    if unknown or isinstance(exc, UnidentifiedImageError):  # the latter from reading the header (_declared_size)
        return "not an image file, or corrupt"
    return text
