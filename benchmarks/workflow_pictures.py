"""Pictures for docs/workflow.md: a handheld bracket with a moving subject, fused by the real CLI three ways.

    .venv/bin/python benchmarks/workflow_pictures.py [--data ../shared/data] [--out docs/images]

From one real static bracket of ``brackets/test`` (darkest, middle and brightest exposure) it makes a
"handheld" one, deterministically: the darkest and brightest exposures are resampled as if the camera had
moved a few pixels and turned about 1 degree between shots (``fusionkit.inference.align.warp`` with a
homography), and a parrot's head cut from ``photos/kodak24/kodim23.jpg`` (in linear light, lit like the scene
around it and scaled to each exposure's brightness) is pasted at a different place in each exposure. Then it runs
``fusionkit fuse ... -v`` from an empty temporary folder (no ``runs/``, so the shipped pretrained student
fuses) with ``--align none``, the default alignment, and the default with ``--deghost``, prints each command
and its stderr, and writes

    docs/images/workflow_grid.jpg    the three inputs; not aligned | aligned | aligned + deghosted
    docs/images/workflow_crops.jpg   zoomed crops of the three results: edges, then two of the subject's places

The photos are never copied into the repository; only the two JPEGs are written there (``--keep DIR`` also
copies the bracket and the three fused files to DIR). The same data and code give byte-identical pictures.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fusionkit.data.io import read_image  # noqa: E402
from fusionkit.data.stack import read_stack  # noqa: E402
from fusionkit.inference.align import align_exposures, describe, warp  # noqa: E402

SCENE = "pmef3-knossos2"
MARGIN = 24                       # px cut from every side so that no warped exposure shows made-up borders
#: Camera motion of the darkest and brightest exposure relative to the middle one: shift (px), turn (degrees).
MOTION = {0: ((7.0, -4.0), 0.9), 2: ((-5.0, 6.0), -1.1)}
#: Where the moving subject is in each exposure (centre, as fractions of width and height): each where that
#: exposure is the best exposed (near the sun, the open sky, the shaded wall), so that a fusion shows each copy.
SUBJECT_AT = {0: (0.63, 0.14), 1: (0.22, 0.34), 2: (0.40, 0.83)}
SUBJECT_HEIGHT = 0.20             # of the frame's height
PANEL = 400                       # width of one panel: three to a 1200-px row
#: Zoomed regions (left, top, right, bottom, as fractions of the reference frame) and what they show.
CROPS = {"edges": (0.29, 0.28, 0.59, 0.62),
         "the darkest exposure's subject": (0.46, 0.05, 0.82, 0.33),
         "the brightest exposure's subject": (0.22, 0.64, 0.58, 0.94)}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def camera_motion(shift: tuple[float, float], degrees: float, shape: tuple[int, int]) -> np.ndarray:
    """Output pixel p takes the photo's value at H @ p: a turn about the centre, then a shift."""
    height, width = shape
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a = math.radians(degrees)
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    turn = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    back = np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1.0]])
    return back @ turn @ to_centre


def subject(photos: Path, height: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A parrot's head (RGB in [0, 1]) and its feathered elliptical alpha, ``height`` px tall."""
    head = Image.open(photos / "kodak24" / "kodim23.jpg").convert("RGB").crop((255, 95, 495, 365))
    width = round(head.width * height / head.height)
    head = head.resize((width, height), Image.LANCZOS)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((4, 4, width - 5, height - 5), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(3))
    rgb = np.asarray(head, dtype=np.float64) / 255
    rgb = rgb * (1 + 0.02 * rng.standard_normal(3))  # a seeded touch of colour variation: the only randomness
    return np.clip(rgb, 0, 1), np.asarray(mask, dtype=np.float64)[..., None] / 255


def relative_exposure(image: np.ndarray, reference: np.ndarray) -> float:
    """How much more light ``image`` got than ``reference``: the median ratio of linear values both expose well."""
    a, b = srgb_to_linear(image).mean(-1), srgb_to_linear(reference).mean(-1)
    both = (image.mean(-1) > 0.08) & (image.mean(-1) < 0.92) & (reference.mean(-1) > 0.08) & (reference.mean(-1) < 0.92)
    return float(np.median(a[both] / np.maximum(b[both], 1e-6))) if both.sum() > 100 else 1.0


def paste(image: np.ndarray, reference: np.ndarray, rgb: np.ndarray, alpha: np.ndarray,
          centre: tuple[float, float], gain: float) -> np.ndarray:
    """``rgb`` pasted over ``image`` with its centre at ``centre`` (fractions), lit like the scene around it (its
    linear mean matched to the reference exposure's there, within 0.1-2x) and exposed ``gain`` times the reference."""
    h, w = rgb.shape[:2]
    top, left = round(centre[1] * image.shape[0] - h / 2), round(centre[0] * image.shape[1] - w / 2)
    cut = (slice(top, top + h), slice(left, left + w))
    linear = srgb_to_linear(rgb)
    light = np.clip(srgb_to_linear(reference[cut]).mean() / linear.mean(), 0.1, 2.0)
    out = srgb_to_linear(image.copy())
    out[cut] = out[cut] * (1 - alpha) + linear * light * gain * alpha
    return linear_to_srgb(out)


def make_bracket(data: Path, folder: Path, seed: int) -> tuple[list[Path], dict[int, np.ndarray]]:
    """Write the handheld bracket to ``folder`` as camera-like names, middle exposure first (as a camera brackets
    0, -, +); return the files darkest first and the true reference-to-exposure homographies."""
    rng = np.random.default_rng(seed)
    files = sorted((data / "brackets" / "test" / SCENE).glob("*.jpg"))
    chosen = [files[0], files[len(files) // 2], files[-1]]
    stills = [read_image(path) for path in chosen]
    height, width = stills[0].shape[-2:]
    box = (MARGIN, MARGIN, height - MARGIN, width - MARGIN)
    truth, frames = {1: np.eye(3)}, []
    for k, still in enumerate(stills):
        motion = camera_motion(*MOTION[k], (height, width)) if k in MOTION else np.eye(3)
        frames.append(warp(still, motion, box).permute(1, 2, 0).double().numpy())
        if k in MOTION:  # reference pixel i shows the scene at i + MARGIN; exposure pixel j at motion @ (j + MARGIN)
            offset = np.array([[1, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1.0]])
            truth[k] = np.linalg.inv(offset) @ np.linalg.inv(motion) @ offset
    rgb, alpha = subject(data / "photos", round(SUBJECT_HEIGHT * frames[1].shape[0]), rng)
    names = {1: "IMG_4301.jpg", 0: "IMG_4302.jpg", 2: "IMG_4303.jpg"}
    paths = {}
    for k, frame in enumerate(frames):
        shot = paste(frame, frames[1], rgb, alpha, SUBJECT_AT[k], relative_exposure(frame, frames[1]))
        paths[k] = folder / names[k]
        Image.fromarray(np.round(shot * 255).astype(np.uint8)).save(paths[k], quality=95, subsampling=0)
    return [paths[k] for k in range(3)], truth


def fusionkit_command() -> str:
    venv = ROOT / ".venv" / "bin" / "fusionkit"
    return str(venv) if venv.exists() else (shutil.which("fusionkit") or "fusionkit")


def run_fuse(work: Path, inputs: list[Path], output: str, *options: str) -> list[str]:
    """Run ``fusionkit fuse`` in ``work`` (no runs/ there: the shipped student), print the command and its stderr."""
    command = [fusionkit_command(), "fuse", *[p.name for p in inputs], "-o", output, *options, "-v"]
    print("$ " + " ".join(["fusionkit", *command[1:]]), flush=True)
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    for line in lines + done.stdout.strip().splitlines():
        print("  " + line)
    if done.returncode:
        raise SystemExit(f"fusionkit fuse failed with exit status {done.returncode}")
    return lines


def font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default()


def panel(image: Image.Image, label: str, width: int = PANEL) -> Image.Image:
    """``image`` scaled to ``width`` with ``label`` on a dark band above it."""
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    band = 22
    out = Image.new("RGB", (width, image.height + band), (24, 24, 24))
    out.paste(image, (0, band))
    ImageDraw.Draw(out).text((6, 3), label, fill=(240, 240, 240), font=font(14))
    return out


def grid(rows: list[list[Image.Image]]) -> Image.Image:
    """Panels in rows (each row as tall as its tallest panel), 4 px apart."""
    gap = 4
    width = max(sum(p.width for p in row) + gap * (len(row) - 1) for row in rows)
    height = sum(max(p.height for p in row) for row in rows) + gap * (len(rows) - 1)
    out = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in rows:
        x = 0
        for p in row:
            out.paste(p, (x, y))
            x += p.width + gap
        y += max(p.height for p in row) + gap
    return out


def crop(image: Image.Image, fractions: tuple[float, float, float, float], reference: tuple[int, int],
         box: tuple[int, int, int, int]) -> Image.Image:
    """The region ``fractions`` of the reference frame (``reference`` = (H, W)), cut from ``image``, which holds the
    reference's pixels inside ``box`` (top, left, bottom, right): so each result shows the same part of the scene."""
    height, width = reference
    top, left = box[0], box[1]
    l, t, r, b = (round(f * s) for f, s in zip(fractions, (width, height, width, height)))
    if not (box[0] <= t and box[1] <= l and b <= box[2] and r <= box[3]):
        raise SystemExit(f"crop {fractions} reaches outside the aligned area {box}: move it inwards")
    return image.crop((l - left, t - top, r - left, b - top))


def save(image: Image.Image, path: Path) -> None:
    image.save(path, quality=85, optimize=True)
    print(f"wrote {path} ({image.width}x{image.height}, {path.stat().st_size / 1024:.0f} KB)")


def disagreement(estimated: np.ndarray, true: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Largest distance (px) between where two homographies send a pixel of ``box`` (its corners bound it)."""
    top, left, bottom, right = box
    corners = np.array([[left, top, 1], [right - 1, top, 1], [left, bottom - 1, 1], [right - 1, bottom - 1, 1.0]]).T
    a, b = estimated @ corners, true @ corners
    return float(np.hypot(*(a[:2] / a[2] - b[:2] / b[2])).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FUSIONKIT_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="also copy the bracket and the fused results to this folder")
    args = parser.parse_args()
    if not (args.data / "brackets" / "test" / SCENE).is_dir():
        raise SystemExit(f"no {SCENE} under {args.data}/brackets/test: give --data, the shared data folder")
    runs = [("not aligned", "none.jpg", ["--align", "none"]), ("aligned", "aligned.jpg", []),
            ("aligned + deghosted", "deghosted.jpg", ["--deghost"])]
    with tempfile.TemporaryDirectory(prefix="fusionkit-workflow-") as tmp:
        work = Path(tmp)
        darkest_first, truth = make_bracket(args.data, work, args.seed)
        camera_order = sorted(darkest_first, key=lambda p: p.name)  # 4301 (middle), 4302 (dark), 4303 (bright)
        for _, output, options in runs:
            run_fuse(work, camera_order, output, *options)
        # The CLI's alignment, run again here: its crop places the zoomed regions, its estimate meets the truth.
        found = align_exposures(read_stack(darkest_first))
        shape = tuple(read_image(darkest_first[1]).shape[-2:])
        for k in (0, 2):
            print(f"{darkest_first[k].name}: true {describe(truth[k], shape)}; the estimate is off by at most "
                  f"{disagreement(found.homographies[k], truth[k], found.box):.2f} px in the cropped area")
        fused = [Image.open(work / output).convert("RGB") for _, output, _ in runs]
        boxes = [(0, 0, *shape), found.box, found.box]
        inputs = [Image.open(path).convert("RGB") for path in darkest_first]
        labels = ["darkest", "middle (reference)", "brightest"]
        top = [panel(im, f"{path.name}: {label}") for im, path, label in zip(inputs, darkest_first, labels)]
        bottom = [panel(im, f"fused: {title} ({im.width}x{im.height})") for im, (title, _, _) in zip(fused, runs)]
        args.out.mkdir(parents=True, exist_ok=True)
        save(grid([top, bottom]), args.out / "workflow_grid.jpg")
        rows = [[panel(crop(im, region, shape, box), f"{title}: {what}") for im, box, (title, _, _) in zip(fused, boxes, runs)]
                for what, region in CROPS.items()]
        save(grid(rows), args.out / "workflow_crops.jpg")
        if args.keep is not None:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
