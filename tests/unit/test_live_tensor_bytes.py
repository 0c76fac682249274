"""The live-tensor byte counter used by the memory estimator and benchmarks, on cases computed by hand."""
import torch

from mgld_vsr.pipeline.memory.estimate import LiveTensorBytes


def test_counts_creation_release_views_and_peaks():
    with LiveTensorBytes() as mem:
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2  # 8000 live: the peak
        del a  # 4000
        view = b[:10]  # a view shares b's memory: no change
        c = b.to(torch.float16)  # + 2000 -> 6000
        assert mem.current == 6000
        del view, b  # the view died with b: 2000
        assert mem.current == 2000
        c.add_(1)  # in place: nothing new
    assert mem.peak == 8000 and mem.current == 2000

def test_weights_and_meta_tensors_count_like_real_ones():
    layer = torch.nn.Linear(100, 50, device="meta")  # 100*50 + 50 floats
    with LiveTensorBytes() as mem:
        assert mem.track(layer) == (100 * 50 + 50) * 4
        x = torch.empty(8, 100, device="meta")  # 3200
        y = layer(x)  # 8 * 50 * 4 = 1600 (plus any temporaries freed at once)
        assert mem.current == (100 * 50 + 50) * 4 + 3200 + 1600
        del x, y
    assert mem.current == (100 * 50 + 50) * 4
    assert mem.peak >= (100 * 50 + 50) * 4 + 3200 + 1600
