"""Variable frame rate (pipeline/video_io/timing.py and the reader): a clip whose frames are unevenly
spaced is loaded onto a constant-rate grid by timestamp, keeping its length and its audio in sync."""
from fractions import Fraction

import av
import pytest
import torch

from mgld_vsr.pipeline import video_io as vio
from mgld_vsr.pipeline.video_io import timing
from vfr_clips import burst_audio, frame_indices, frame_times, level_frames, nearest_frames, onset_seconds, write_vfr_clip

#: 12 frames 40-130 ms apart (the issue's kind of clip): no two closer than 40 ms.
SPARSE = frame_times([40, 70, 120, 40, 80, 40, 130, 45, 55, 45, 95])
#: the same with a burst of three frames 8 ms apart (a screen recorder catching up): some must be dropped.
BURST = [0, 40, 110, 230, 270, 350, 358, 366, 390, 520, 565, 620, 665, 760]
LAST_MS = 75  # how long the last frame shows
MARKER_MS = 520  # the audio burst starts when the frame at this time appears


def _clip(tmp_path, times, name="vfr.mkv", audio_seconds=0.94):
    frames = level_frames(len(times))
    start = MARKER_MS / 1000
    audio = burst_audio(audio_seconds, start, start + 0.08)
    return write_vfr_clip(tmp_path / name, frames, times, LAST_MS, audio=audio)


@pytest.mark.parametrize("times", [SPARSE, BURST], ids=["sparse", "burst"])
def test_variable_rate_clip_keeps_its_length_and_audio_sync(tmp_path, times):
    clip = vio.read_video(_clip(tmp_path, times))
    frame = 1 / clip.fps
    shown = frame_indices(clip.frames)
    video_seconds = Fraction(times[-1] + LAST_MS - times[0], 1000)
    # as long as the file's video, within one frame (it used to play at the header rate: a different length)
    assert abs(clip.duration - video_seconds) <= frame
    # every output frame shows the source frame nearest to its time on the constant-rate grid
    assert shown == nearest_frames(times, clip.fps, len(shown))
    # the audio under it is as long as the video and its burst starts with the marked frame
    assert abs(clip.audio.duration - clip.duration) <= frame
    onset = onset_seconds(clip.audio.waveform[0], clip.audio.sample_rate)
    assert shown[round(onset * clip.fps)] == times.index(MARKER_MS)  # the frame on screen when the sound starts is the marked one
    # the loader says what it did
    assert clip.timing is not None
    text = clip.timing.describe()
    assert "variable frame rate" in text and f"{len(times)} source frames -> {len(shown)}" in text
    if times is SPARSE:  # frames at least one period apart: none lost, the gaps filled by repeats
        assert clip.fps == 25 and sorted(set(shown)) == list(range(len(times)))
        assert clip.timing.dropped == 0 and clip.timing.repeated == len(shown) - len(times)
    else:  # the burst is thinned, and the frame count stays near the file's
        assert clip.timing.dropped > 0 and len(shown) <= 2 * len(times)


def test_selection_counts_frames_on_the_constant_rate_grid(tmp_path):
    path = _clip(tmp_path, SPARSE)
    whole = vio.read_video(path)
    part = vio.read_video(path, start=5, count=6, every=2)
    assert torch.equal(part.frames, whole.frames[5:17:2]) and part.fps == whole.fps / 2
    assert abs(part.audio.duration - 12 / whole.fps) <= 1 / whole.fps
    assert torch.equal(torch.stack(list(vio.iter_video(path, start=5, count=6, every=2))), part.frames)
    # decoding still stops at the last wanted frame: output frame 15 shows a frame decoded before the end
    assert part.decoded_frames == frame_indices(whole.frames[15:16])[0] + 1 < len(SPARSE)


def test_constant_rate_files_are_left_alone(tmp_path):
    """29.97 fps in Matroska's millisecond clock (timestamps 33 or 34 ms apart) is constant-rate, not resampled."""
    frames = torch.stack([torch.from_numpy(f) for f in level_frames(10, step=20)])
    path = vio.write_video(tmp_path / "cfr.mkv", frames, Fraction(30000, 1001), codec="ffv1")
    clip = vio.read_video(path)
    assert clip.timing is None and clip.fps == Fraction(30000, 1001)
    assert frame_indices(clip.frames, step=20) == list(range(10))


def _timeline(times_ms, end_ms):
    return timing.FrameTimeline(tuple(times_ms), end_ms, Fraction(1, 1000))


def test_an_idle_screen_recording_is_not_blown_up():
    """Bursts at 60 fps with 2 s idle stretches: resampling at 60 fps would multiply the frames, so the grid
    runs at the average rate, and the clip still lasts as long as the recording."""
    burst = [round(i * 1000 / 60) for i in range(30)]
    times = burst + [2500 + t for t in burst] + [5000 + t for t in burst]
    grid = timing.constant_rate_grid(_timeline(times, 5500), Fraction(1000))
    assert grid.resampled and grid.frames <= timing.MAX_REPEAT_FACTOR * len(times)
    assert abs(grid.frames / grid.rate - Fraction(5500, 1000)) <= 1 / grid.rate


def test_jittered_constant_rate_is_left_alone():
    times = [round(k * 1000 / 30) + (1 if k % 3 == 0 else 0) for k in range(20)]  # 30 fps, +-1 ms of jitter
    grid = timing.constant_rate_grid(_timeline(times, round(20 * 1000 / 30)), Fraction(30))
    assert not grid.resampled and grid.rate == 30 and grid.frames == 20


def test_rates_are_rounded_to_whole_or_ntsc_rates():
    assert timing.nice_rate(25.0) == 25
    assert timing.nice_rate(1000 / 33.3667) == Fraction(30000, 1001)
    assert timing.nice_rate(0.2) == 1


def test_last_frame_without_a_stored_duration_lasts_a_typical_interval(tmp_path):
    """A header rate of 1000 fps gives every packet a 1 ms duration: the last frame then lasts the median gap."""
    path = tmp_path / "short_last.mkv"
    write_vfr_clip(path, level_frames(5), [0, 50, 100, 150, 250], 1)
    with av.open(str(path)) as container:
        line = timing.read_timeline(container)
    assert line.pts == (0, 50, 100, 150, 250) and line.end == 300
