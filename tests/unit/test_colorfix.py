"""Colour fix (README 5.3): AdaIN statistics transfer and the wavelet low/high band swap."""
import pytest
import torch

from mgld_vsr.pipeline.decoding.colorfix import adain_color_fix, wavelet_blur, wavelet_color_fix, wavelet_split


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def _images(n=2, c=3, h=20, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) * 2 - 1


def _blur_by_shifts(x: torch.Tensor, d: int) -> torch.Tensor:
    """Independent blur: weighted sum of 9 clamped-index shifts (replicate border), weights 1-2-1 x 1-2-1 / 16."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for dy, wy in ((-d, 1), (0, 2), (d, 1)):
        rows = (torch.arange(h) + dy).clamp(0, h - 1)
        for dx, wx in ((-d, 1), (0, 2), (d, 1)):
            cols = (torch.arange(w) + dx).clamp(0, w - 1)
            out += x[..., rows[:, None], cols[None, :]] * (wy * wx / 16)
    return out


def test_adain_takes_style_mean_and_std():
    content, style = _images(seed=1), _images(seed=2) * 0.3 + 0.2
    out = adain_color_fix(content, style)
    flat_out, flat_style = out.flatten(2), style.flatten(2)
    torch.testing.assert_close(flat_out.mean(-1), flat_style.mean(-1), rtol=0, atol=1e-5)
    # std = sqrt(var + 1e-5) on both sides, so the unbiased variances agree up to that eps.
    torch.testing.assert_close(flat_out.var(-1), flat_style.var(-1), rtol=2e-4, atol=2e-5)
    # The content's spatial pattern is kept: per channel, an increasing affine map of the content.
    corr = torch.stack([torch.corrcoef(torch.stack([content[i, k].flatten(), out[i, k].flatten()]))[0, 1]
                        for i in range(2) for k in range(3)])
    assert (corr > 0.9999).all()


def test_adain_formula_and_style_of_other_size():
    content, style = _images(seed=3), _images(h=7, w=9, seed=4)
    out = adain_color_fix(content, style)
    c, s = content.flatten(2), style.flatten(2)
    c_std = (c.var(-1, unbiased=True) + 1e-5).sqrt()[..., None, None]
    s_std = (s.var(-1, unbiased=True) + 1e-5).sqrt()[..., None, None]
    expected = (content - c.mean(-1)[..., None, None]) / c_std * s_std + s.mean(-1)[..., None, None]
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_wavelet_blur_matches_shifted_sum():
    x = _images(n=1, c=4, h=9, w=13, seed=5)
    for d in (1, 2, 4, 8, 16):  # dilations larger than the image still use the replicated border
        torch.testing.assert_close(wavelet_blur(x, d), _blur_by_shifts(x, d), rtol=1e-6, atol=1e-6)


def test_wavelet_bands_sum_back_and_fix_with_itself_is_identity():
    x = _images(seed=6)
    high, low = wavelet_split(x)
    torch.testing.assert_close(high + low, x, rtol=0, atol=1e-6)
    torch.testing.assert_close(wavelet_color_fix(x, x), x, rtol=0, atol=1e-6)


def test_wavelet_keeps_content_detail_and_takes_style_colour():
    content = _images(seed=7)
    shift = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    # A colour cast on the LR: only the low band changes, so the result is the content with that cast.
    torch.testing.assert_close(wavelet_color_fix(content, content + shift), content + shift, rtol=0, atol=1e-5)
    # A flat content has no detail: the result is the style's low band alone, smoother than the style.
    style = _images(seed=8)
    flat = torch.full_like(style, 0.5)
    out = wavelet_color_fix(flat, style)
    torch.testing.assert_close(out, wavelet_split(style)[1], rtol=0, atol=1e-6)
    assert out.diff(dim=-1).abs().mean() < 0.2 * style.diff(dim=-1).abs().mean()
    # A high-frequency checkerboard on the content survives on top of a different style.
    board = ((torch.arange(20)[:, None] + torch.arange(24)[None, :]) % 2).float().expand(2, 3, 20, 24) * 0.4
    diff = wavelet_color_fix(content + board, style) - wavelet_color_fix(content, style)
    inner = diff[..., 8:-8, 8:-8]
    torch.testing.assert_close(inner - inner.mean(), board[..., 8:-8, 8:-8] - board.mean(), rtol=0, atol=0.1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_close_to_fp32(dtype):
    content, style = _images(seed=9), _images(seed=10)
    for fix in (adain_color_fix, wavelet_color_fix):
        ref = fix(content, style)
        low = fix(content.to(dtype), style.to(dtype))
        assert low.dtype == dtype and low.shape == ref.shape
        assert (low.float() - ref).abs().max() / ref.abs().max() < 3e-2


def test_shape_errors():
    x = _images()
    with pytest.raises(ValueError, match="N, C, H, W"):
        adain_color_fix(x[0], x[0])
    with pytest.raises(ValueError, match="batch and channel"):
        adain_color_fix(x, x[:, :2])
    with pytest.raises(ValueError, match="shape"):
        wavelet_color_fix(x, x[..., :-1])
    assert wavelet_color_fix(x[:, :1], x[:, :1]).shape == (2, 1, 20, 24)  # any channel count
