"""Variable-frame-rate test clips, as phones and screen recorders write them: frames at chosen
timestamps (millisecond time base, each packet's duration stored), plus an audio track."""
from fractions import Fraction

import av
import numpy as np

MS = Fraction(1, 1000)


def frame_times(gaps_ms, first_ms=0):
    """Frame timestamps (ms) from the gaps between consecutive frames."""
    times = [first_ms]
    for gap in gaps_ms:
        times.append(times[-1] + gap)
    return times


def level_frames(count, size=32, base=30, step=15, texture=0, seed=0):
    """Frame ``i`` has mean grey level ``base + step * i`` (identifiable after lossy coding and, through
    the colour fix, after super-resolution); ``texture`` adds a fixed pattern of that amplitude."""
    pattern = np.zeros((size, size, 3))
    if texture:
        rng = np.random.default_rng(seed)
        coarse = rng.uniform(-1, 1, (size // 8, size // 8, 3))
        pattern = np.kron(coarse, np.ones((8, 8, 1))) * texture
    return [np.clip(base + step * i + pattern, 0, 255).astype(np.uint8) for i in range(count)]


def frame_indices(frames, base=30, step=15):
    """Which :func:`level_frames` frame each of ``frames`` (``[N, H, W, 3]`` uint8 tensor) shows, by its mean level."""
    means = frames.float().mean(dim=(1, 2, 3))
    return ((means - base) / step).round().long().tolist()


def nearest_frames(times_ms, fps, count):
    """For output frames ``k = 0..count-1`` at ``k / fps``: the index of the source frame nearest in time."""
    start = times_ms[0]
    out = []
    for k in range(count):
        t = start + Fraction(k * 1000) / fps
        distances = sorted((abs(t - s), i) for i, s in enumerate(times_ms))
        assert len(distances) == 1 or distances[0][0] != distances[1][0], f"tie at output frame {k}: fix the test clip"
        out.append(distances[0][1])
    return out


def write_vfr_clip(path, frames, times_ms, last_ms, audio=None, sample_rate=16000, codec="ffv1"):
    """Frames at ``times_ms`` (the last one lasting ``last_ms``), in a Matroska file with a 1 ms time base,
    every packet's duration stored. ``audio``: float32 ``[samples]`` starting at time 0 (FLAC)."""
    durations = [b - a for a, b in zip(times_ms, times_ms[1:])] + [last_ms]
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=1000)  # a millisecond clock: the header says "1000 fps"
        video.width, video.height = width, height
        video.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("flac", rate=sample_rate)
            sound.layout = "mono"
        for frame_rgb, t, duration in zip(frames, times_ms, durations):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
            frame.pts, frame.time_base = t, MS
            for packet in video.encode(frame):
                packet.duration = round(Fraction(duration) * MS / packet.time_base)
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, 0, Fraction(1, sample_rate)
            for packet in sound.encode(chunk):
                container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return path


def burst_audio(seconds, start_s, stop_s, sample_rate=16000, hz=1000.0):
    """Silence with a tone between ``start_s`` and ``stop_s``: a marker whose onset is easy to find."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = np.where((t >= start_s) & (t < stop_s), 0.5 * np.sin(2 * np.pi * hz * t), 0.0)
    return wave.astype(np.float32)


def onset_seconds(waveform, sample_rate, threshold=0.1):
    """Time of the first sample louder than ``threshold`` (the burst's start)."""
    loud = np.flatnonzero(np.abs(np.asarray(waveform)) > threshold)
    return None if loud.size == 0 else loud[0] / sample_rate
