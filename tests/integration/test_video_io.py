"""Host-free video I/O (pipeline/video_io.py): round trips, exact rates, audio, frame selection,
pixel-format conversion, image sequences, error messages and atomic writes."""
import os
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from mgld_vsr.pipeline import video_io as vio
from needs import need_file


# ------------------------------------------------------------------------------------------------
# synthetic material


def smooth_frames(n=8, h=48, w=64, seed=0):
    """Low-frequency colour content (codec-friendly) that differs per frame."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(n, 3, generator=g) * 6.28
    frames = []
    for i in range(n):
        rgb = [0.5 + 0.35 * torch.sin(2.5 * x + 1.5 * y + phase[i, c] + 0.3 * i) for c in range(3)]
        frames.append(torch.stack(rgb, -1))
    return (torch.stack(frames) * 255).round().to(torch.uint8)


def numbered_frames(n, h=16, w=20):
    """Frame k is filled with the value 5*k (exact identification after lossless coding)."""
    values = (torch.arange(n) * 5 % 256).to(torch.uint8)
    return values[:, None, None, None].expand(n, h, w, 3).contiguous()


def frame_numbers(frames):
    return (frames.float().mean(dim=(1, 2, 3)) / 5).round().long().tolist()


def tone(freq, seconds, sr, channels=1, amp=0.5):
    t = torch.arange(int(round(seconds * sr)), dtype=torch.float64) / sr
    wave = (amp * torch.sin(2 * torch.pi * freq * t)).float()
    return vio.AudioTrack(wave[None].repeat(channels, 1).contiguous(), sr)


def dominant_hz(track):
    x = track.waveform[0].double().numpy()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * track.sample_rate / len(x)


def decoded_audio_samples(path):
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(audio=0))


# ------------------------------------------------------------------------------------------------
# round trips and rates


def test_ffv1_round_trip_is_exact_even_for_odd_sizes(tmp_path):
    frames = torch.randint(0, 256, (6, 17, 23, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    path = vio.write_video(tmp_path / "clip.mkv", frames, 24, codec="ffv1")
    clip = vio.read_video(path)
    assert clip.frames.dtype == torch.uint8 and clip.frames.shape == frames.shape
    assert torch.equal(clip.frames, frames)


@pytest.mark.parametrize("codec,suffix,pixel_format", [("h264", ".mp4", None), ("h265", ".mkv", "yuv420p10le"),
                                                      ("prores", ".mov", None), ("h264", ".mov", "yuv444p")])
def test_lossy_round_trip_is_close(tmp_path, codec, suffix, pixel_format):
    frames = smooth_frames()
    path = vio.write_video(tmp_path / f"clip{suffix}", frames, 25, codec=codec, pixel_format=pixel_format)
    clip = vio.read_video(path)
    assert clip.frames.shape == frames.shape
    err = (clip.frames.float() - frames.float()).abs()
    assert err.mean() < 2.5 and err.max() < 40
    # a wrong colour matrix or swapped channels would be far off
    assert (clip.frames.float().mean(dim=(0, 1, 2)) - frames.float().mean(dim=(0, 1, 2))).abs().max() < 2


def test_codec_details_in_the_file(tmp_path):
    frames = smooth_frames(n=3, w=64)
    with av.open(vio.write_video(tmp_path / "a.mp4", frames, 24, codec="h265")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.streams.video[0].codec_tag == "hvc1"
    with av.open(vio.write_video(tmp_path / "b", frames, 24, codec="prores")) as c:  # default suffix .mov
        assert c.streams.video[0].codec_context.name == "prores"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv422p10le"
    assert (tmp_path / "b.mov").is_file()


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(24), Fraction(24000, 1001)])
@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("ffv1", ".mkv")])
def test_exact_frame_rate_survives(tmp_path, fps, codec, suffix):
    path = vio.write_video(tmp_path / f"clip{suffix}", numbered_frames(12), fps, codec=codec)
    info = vio.probe_video(path)
    assert isinstance(info.fps, Fraction) and info.fps == fps
    assert vio.read_video(path).fps == fps
    assert info.estimated_frames == 12
    assert info.duration == pytest.approx(12 / fps, abs=2e-3)


def test_float_rates_snap_to_exact_fractions():
    assert vio.to_fraction(29.97) == Fraction(30000, 1001)
    assert vio.to_fraction(23.976) == Fraction(24000, 1001)
    assert vio.to_fraction(24.0) == Fraction(24)
    assert vio.to_fraction(12.5) == Fraction(25, 2)
    assert vio.to_fraction("30000/1001") == Fraction(30000, 1001)
    for bad in (0, -5, float("nan"), "fast"):
        with pytest.raises(ValueError):
            vio.to_fraction(bad)


# ------------------------------------------------------------------------------------------------
# audio


@pytest.mark.parametrize("suffix,codec,audio_codec,expect", [(".mp4", "h264", None, "aac"), (".mkv", "ffv1", None, "flac"),
                                                               (".mkv", "h264", "pcm", "pcm_s16le")])
def test_tone_survives_and_is_cut_to_the_video(tmp_path, suffix, codec, audio_codec, expect):
    fps, n, sr = Fraction(24), 12, 44100  # 0.5 s of video, 1 s of audio
    path = vio.write_video(tmp_path / f"clip{suffix}", smooth_frames(n), fps, audio=tone(1000, 1.0, sr, channels=2),
                           codec=codec, audio_codec=audio_codec)
    info = vio.probe_video(path)
    assert info.has_audio and info.audio_codec == expect and info.audio_sample_rate == sr and info.audio_channels == 2
    # the file itself holds only the video's duration (AAC may round up to its 1024-sample frames)
    stored = decoded_audio_samples(path)
    assert sr * n / fps <= stored <= sr * n / fps + 1024
    clip = vio.read_video(path)
    assert clip.audio.sample_rate == sr and clip.audio.channels == 2
    assert abs(clip.audio.samples - sr * n / fps) <= 1
    assert clip.audio.waveform.dtype == torch.float32
    assert dominant_hz(clip.audio) == pytest.approx(1000, abs=5)


def test_audio_follows_the_selected_frame_range(tmp_path):
    fps, sr = Fraction(24), 48000
    low, high = tone(500, 0.5, sr), tone(1500, 0.5, sr)  # frames 0-11 / 12-23
    audio = vio.AudioTrack(torch.cat([low.waveform, high.waveform], 1), sr)
    path = vio.write_video(tmp_path / "clip.mp4", smooth_frames(24), fps, audio=audio)
    part = vio.read_video(path, start=14, count=4, every=2)  # frames 14..20, span of 8 source frames
    assert abs(part.audio.samples - sr * 8 / 24) <= 1
    assert dominant_hz(part.audio) == pytest.approx(1500, abs=15)
    head = vio.read_video(path, count=10)
    assert dominant_hz(head.audio) == pytest.approx(500, abs=15)


def test_short_audio_is_not_padded_and_odd_rates_are_resampled(tmp_path):
    fps = Fraction(24)
    path = vio.write_video(tmp_path / "clip.mp4", smooth_frames(12), fps, audio=tone(800, 0.2, 32001))
    info = vio.probe_video(path)
    assert info.audio_sample_rate == 32000  # AAC has no 32001 Hz: nearest supported rate
    clip = vio.read_video(path)
    assert clip.audio.samples <= 0.2 * 32000 + 1024
    assert dominant_hz(clip.audio) == pytest.approx(800, abs=10)


def test_no_audio_stream_gives_none(tmp_path):
    path = vio.write_video(tmp_path / "clip.mp4", smooth_frames(4), 24)
    assert vio.read_video(path).audio is None
    assert not vio.probe_video(path).has_audio


def test_comfy_audio_conversions(tmp_path):
    track = tone(440, 0.1, 16000, channels=2)
    d = vio.audio_to_comfy(track)
    assert d["waveform"].shape == (1, 2, 1600) and d["sample_rate"] == 16000
    back = vio.audio_from_comfy(d)
    assert torch.equal(back.waveform, track.waveform) and back.sample_rate == 16000
    assert vio.audio_to_comfy(None) is None
    assert vio.audio_from_comfy(None) is None
    assert vio.audio_from_comfy({"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100}) is None
    assert vio.audio_from_comfy({"waveform": torch.zeros(0, 2, 10), "sample_rate": 44100}) is None
    with pytest.raises(ValueError):
        vio.audio_from_comfy({"waveform": torch.zeros(1, 1, 10), "sample_rate": 0})
    # the writer takes the host's dictionary directly; an empty one means no audio stream
    path = vio.write_video(tmp_path / "a.mp4", smooth_frames(6), 24, audio=d)
    assert vio.probe_video(path).audio_channels == 2
    silent = {"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100}
    path = vio.write_video(tmp_path / "b.mp4", smooth_frames(6), 24, audio=silent)
    assert not vio.probe_video(path).has_audio


# ------------------------------------------------------------------------------------------------
# frame selection


def test_start_count_every_selection(tmp_path):
    path = vio.write_video(tmp_path / "clip.mkv", numbered_frames(20), Fraction(30000, 1001), codec="ffv1")
    clip = vio.read_video(path, start=3, count=4, every=2)
    assert frame_numbers(clip.frames) == [3, 5, 7, 9]
    assert clip.fps == Fraction(15000, 1001) and clip.start == 3 and clip.every == 2
    assert frame_numbers(vio.read_video(path, start=11, every=3).frames) == [11, 14, 17]
    assert frame_numbers(vio.read_video(path, start=18, count=10).frames) == [18, 19]
    assert vio.read_video(path, every=4, force_fps=8).fps == 8


def test_decoding_stops_after_the_last_wanted_frame(tmp_path):
    path = vio.write_video(tmp_path / "clip.mp4", smooth_frames(60, 32, 32), 24, audio=tone(300, 3.0, 8000))
    clip = vio.read_video(path, count=5)
    assert clip.frames.shape[0] == 5 and clip.decoded_frames == 5
    clip = vio.read_video(path, start=10, count=3, every=4)
    assert clip.decoded_frames == 10 + 2 * 4 + 1
    assert vio.read_video(path).decoded_frames == 60
    # the streaming reader is lazy as well
    stream = vio.iter_video(path, start=2)
    first = next(stream)
    assert first.shape == (32, 32, 3) and first.dtype == torch.uint8
    stream.close()


def test_iter_video_matches_read_video(tmp_path):
    path = vio.write_video(tmp_path / "clip.mkv", numbered_frames(9), 24, codec="ffv1")
    streamed = torch.stack(list(vio.iter_video(path, start=1, every=3)))
    assert frame_numbers(streamed) == [1, 4, 7]


# ------------------------------------------------------------------------------------------------
# pixel formats and sizes


def _write_with_av(path, arrays, in_format, codec, pix_fmt, rate=24):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = arrays[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for i, array in enumerate(arrays):
            frame = av.VideoFrame.from_ndarray(array, format=in_format)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_grayscale_source_becomes_rgb(tmp_path):
    gray = [np.random.default_rng(i).integers(0, 256, (12, 10), dtype=np.uint8) for i in range(3)]
    _write_with_av(tmp_path / "gray.mkv", gray, "gray", "ffv1", "gray")
    clip = vio.read_video(tmp_path / "gray.mkv")
    assert clip.frames.shape == (3, 12, 10, 3)
    for c in range(3):
        assert torch.equal(clip.frames[..., c], torch.from_numpy(np.stack(gray)))


def test_alpha_source_drops_alpha(tmp_path):
    rgba = [np.random.default_rng(i).integers(0, 256, (9, 14, 4), dtype=np.uint8) for i in range(3)]
    _write_with_av(tmp_path / "alpha.mkv", rgba, "rgba", "ffv1", "bgra")
    with pytest.warns(RuntimeWarning, match="has transparent pixels"):  # said, not silent
        clip = vio.read_video(tmp_path / "alpha.mkv")
    assert torch.equal(clip.frames, torch.from_numpy(np.stack(rgba)[..., :3]))
    assert vio.probe_video(tmp_path / "alpha.mkv").pixel_format == "bgra"


def test_ten_bit_source_becomes_8_bit_rgb(tmp_path):
    frames = smooth_frames(3, 20, 24)
    path = vio.write_video(tmp_path / "deep.mkv", frames, 24, codec="ffv1", pixel_format="yuv444p10le")
    assert vio.probe_video(path).pixel_format == "yuv444p10le"
    clip = vio.read_video(path)
    assert clip.frames.dtype == torch.uint8
    assert (clip.frames.int() - frames.int()).abs().max() <= 1


def test_odd_sizes_are_padded_by_replicating_the_edge(tmp_path):
    frames = smooth_frames(4, 17, 23)
    with pytest.warns(RuntimeWarning, match="23x17 frames are written as 24x18"):  # said, not silent
        path = vio.write_video(tmp_path / "odd.mp4", frames, 24, codec="h264", crf=0)
    clip = vio.read_video(path)
    assert clip.frames.shape == (4, 18, 24, 3)  # yuv420p needs even sizes
    got = clip.frames.float()
    # crf=0 is lossless in YUV: what is left is 4:2:0 chroma resampling
    assert (got[:, :17, :23] - frames.float()).abs().mean() < 4
    assert (got[:, 17, :23] - frames[:, 16].float()).abs().mean() < 4  # copied last row
    assert (got[:, :17, 23] - frames[:, :, 22].float()).abs().mean() < 4  # copied last column
    assert (got[:, 17, :23] - frames[:, 0].float()).abs().mean() > 20  # (the test can tell rows apart)
    # no chroma subsampling, no padding
    path = vio.write_video(tmp_path / "odd444.mp4", frames, 24, codec="h264", pixel_format="yuv444p")
    assert vio.probe_video(path).width == 23 and vio.probe_video(path).height == 17


def test_float_and_grey_frame_inputs(tmp_path):
    frames = smooth_frames(3, 16, 16)
    path = vio.write_video(tmp_path / "f.mkv", frames.float() / 255, 24, codec="ffv1")
    assert torch.equal(vio.read_video(path).frames, frames)
    grey = frames[..., 0]
    path = vio.write_video(tmp_path / "g.mkv", list(grey), 24, codec="ffv1")
    assert torch.equal(vio.read_video(path).frames, grey[..., None].expand(-1, -1, -1, 3))


def test_streamed_frames_and_progress(tmp_path):
    frames = numbered_frames(10)
    seen = []
    source = (frames[i] for i in range(10))  # a generator: never a whole tensor
    path = vio.write_video(tmp_path / "s.mkv", source, 24, codec="ffv1", on_frame=seen.append)
    assert seen == list(range(1, 11))
    assert frame_numbers(vio.read_video(path).frames) == list(range(10))
    chunks = [frames[:4], frames[4:]]  # [n, H, W, 3] chunks are accepted too
    path = vio.write_video(tmp_path / "c.mkv", chunks, 24, codec="ffv1")
    assert frame_numbers(vio.read_video(path).frames) == list(range(10))


# ------------------------------------------------------------------------------------------------
# image sequences and GIF


def test_png_sequence_round_trip(tmp_path):
    frames = torch.randint(0, 256, (5, 7, 9, 3), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    folder = vio.write_video(tmp_path / "seq", frames, 24, codec="png")
    names = sorted(os.listdir(folder))
    assert names == [vio.PNG_SEQUENCE_NAME.format(i) for i in range(5)]
    clip = vio.read_video(folder)
    assert torch.equal(clip.frames, frames) and clip.fps == vio.DEFAULT_SEQUENCE_FPS and clip.audio is None
    assert torch.equal(vio.read_video(str(tmp_path / "seq" / "*.png"), start=1, count=2).frames, frames[1:3])
    assert vio.read_video(folder, force_fps=12).fps == 12
    info = vio.probe_video(folder)
    assert info.is_image_sequence and info.frame_count == 5 and (info.width, info.height) == (9, 7)
    # a second write replaces the folder as a whole
    vio.write_video(folder, frames[:2], 24, codec="png")
    assert len(os.listdir(folder)) == 2


def test_image_folder_in_natural_order(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 4, 4, "rgb24"
    for k in (1, 2, 10):  # natural order 1, 2, 10 (a plain sort would give 1, 10, 2)
        frame = av.VideoFrame.from_ndarray(np.full((4, 4, 3), 5 * k, np.uint8), format="rgb24")
        (folder / f"img{k}.png").write_bytes(b"".join(bytes(p) for p in encoder.encode(frame)))
    (folder / "notes.txt").write_text("ignored")
    assert frame_numbers(vio.read_video(folder).frames) == [1, 2, 10]


def test_gif_is_read(tmp_path):
    arrays = [np.full((8, 8, 3), v, np.uint8) for v in (0, 255, 0, 255)]
    _write_with_av(tmp_path / "a.gif", arrays, "rgb24", "gif", "rgb8", rate=10)  # GIF delays are in 1/100 s
    clip = vio.read_video(tmp_path / "a.gif")
    assert clip.frames.shape == (4, 8, 8, 3) and clip.fps == 10
    assert clip.frames[1].float().mean() > 200 and clip.frames[2].float().mean() < 50


# ------------------------------------------------------------------------------------------------
# errors


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(vio.VideoReadError, match="not found"):
        vio.read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(vio.VideoReadError, match="bad.mp4") as err:
        vio.read_video(bad)
    assert "Invalid data" in str(err.value)  # what FFmpeg said
    assert isinstance(err.value, ValueError)
    with pytest.raises(vio.VideoReadError, match="bad.mp4"):
        vio.probe_video(bad)
    with pytest.raises(vio.VideoReadError, match="no files match"):
        vio.read_video(str(tmp_path / "*.png"))


def test_file_without_video_stream(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(vio.VideoReadError, match="no video stream"):
        vio.read_video(path)


def test_zero_decodable_frames(tmp_path):
    path = vio.write_video(tmp_path / "clip.mp4", smooth_frames(4, 16, 16), 24)
    data = bytearray(open(path, "rb").read())
    at = data.index(b"mdat")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 : at - 4 + size] = bytes(size - 8)  # wipe every compressed frame, keep the index
    broken = tmp_path / "wiped.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(vio.VideoReadError, match="no frames could be decoded from .*wiped.mp4"):
        vio.read_video(broken)


def test_start_past_the_end_says_how_many_frames(tmp_path):
    path = vio.write_video(tmp_path / "clip.mkv", numbered_frames(10), 24, codec="ffv1")
    with pytest.raises(vio.VideoReadError, match="has 10 frames"):
        vio.read_video(path, start=10)
    folder = vio.write_video(tmp_path / "seq", numbered_frames(3), 24, codec="png")
    with pytest.raises(vio.VideoReadError, match="has 3 frames"):
        vio.read_video(folder, start=7)


@pytest.mark.parametrize("kwargs", [dict(start=-1), dict(count=-2), dict(every=0), dict(force_fps=-1.0), dict(start=1.5)])
def test_bad_read_parameters(tmp_path, kwargs):
    path = vio.write_video(tmp_path / "clip.mkv", numbered_frames(3), 24, codec="ffv1")
    with pytest.raises(vio.VideoReadError):
        vio.read_video(path, **kwargs)


def test_bad_write_parameters(tmp_path):
    frames = numbered_frames(2)
    with pytest.raises(ValueError, match="unknown codec"):
        vio.write_video(tmp_path / "a.mp4", frames, 24, codec="vp9")
    with pytest.raises(ValueError, match="cannot be written to a .mp4"):
        vio.write_video(tmp_path / "a.mp4", frames, 24, codec="ffv1")
    with pytest.raises(ValueError, match="pixel format"):
        vio.write_video(tmp_path / "a.mp4", frames, 24, pixel_format="rgb48le")
    with pytest.raises(ValueError, match="no frames"):
        vio.write_video(tmp_path / "a.mp4", [], 24)
    with pytest.raises(ValueError, match="64 px wide"):
        vio.write_video(tmp_path / "a.mp4", frames, 24, codec="h265")
    with pytest.raises(ValueError, match="frame 1"):
        vio.write_video(tmp_path / "a.mkv", [frames[0], frames[1, :8]], 24, codec="ffv1")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# atomic writes


def _failing(frames, after, exc):
    for i, frame in enumerate(frames):
        if i == after:
            raise exc
        yield frame


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("codec,name", [("h264", "out.mp4"), ("ffv1", "out.mkv"), ("png", "out")])
def test_failure_midway_leaves_nothing_behind(tmp_path, exc, codec, name):
    frames = smooth_frames(8, 16, 16)
    with pytest.raises(type(exc)):
        audio = tone(440, 1.0, 8000) if codec != "png" else None
        vio.write_video(tmp_path / name, _failing(frames, 5, exc), 24, codec=codec, audio=audio)
    assert os.listdir(tmp_path) == []


def test_failure_keeps_the_existing_target(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous version")
    with pytest.raises(RuntimeError):
        vio.write_video(target, _failing(smooth_frames(8, 16, 16), 4, RuntimeError("boom")), 24)
    assert target.read_bytes() == b"previous version"
    assert os.listdir(tmp_path) == ["out.mp4"]
    # a successful write replaces it
    vio.write_video(target, smooth_frames(3, 16, 16), 24)
    assert vio.read_video(target).frames.shape[0] == 3
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_png_sequence_failure_keeps_the_existing_folder(tmp_path):
    folder = vio.write_video(tmp_path / "seq", numbered_frames(3), 24, codec="png")
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}
    with pytest.raises(RuntimeError):
        vio.write_video(folder, _failing(numbered_frames(6), 4, RuntimeError("boom")), 24, codec="png")
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before
    assert os.listdir(tmp_path) == ["seq"]
    # a folder holding other files is never replaced
    (tmp_path / "seq" / "keep.txt").write_text("mine")
    with pytest.raises(vio.VideoWriteError, match="refusing"):
        vio.write_video(folder, numbered_frames(2), 24, codec="png")


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(vio.VideoWriteError, match="output folder"):
        vio.write_video(blocker / "out.mp4", numbered_frames(2), 24)
    if os.geteuid() == 0:
        pytest.skip("running as root, which writes into a folder whatever its permission bits, so a read-only folder "
                    "cannot be made here (test_reliability.py's read-only check uses a mount namespace instead)")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(vio.VideoWriteError, match="not writable"):
            vio.write_video(locked / "out.mp4", numbered_frames(2), 24)
    finally:
        locked.chmod(0o755)


def test_missing_parent_folders_are_created(tmp_path):
    path = vio.write_video(tmp_path / "a" / "b" / "out.mkv", numbered_frames(2), 24, codec="ffv1")
    assert os.path.isfile(path)


# ------------------------------------------------------------------------------------------------
# the project's sample clip


def test_sample_clip():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "sample_lr.mp4")
    need_file(path, "the sample clip examples/sample_lr.mp4",
              "it is tracked in git (restore it, or rebuild it with python examples/make_sample_clip.py)")
    assert os.path.getsize(path) <= 1_000_000
    clip = vio.read_video(path)
    assert clip.frames.shape == (24, 96, 128, 3) and clip.fps == Fraction(24000, 1001)
    diffs = (clip.frames[1:].float() - clip.frames[:-1].float()).abs().mean(dim=(1, 2, 3))
    assert int(diffs.argmax()) == 11  # the scene cut between frames 11 and 12
    shot1 = vio.read_video(path, count=12).audio
    shot2 = vio.read_video(path, start=12).audio
    assert dominant_hz(shot1) == pytest.approx(440, abs=10)
    assert dominant_hz(shot2) == pytest.approx(660, abs=10)
