"""Tiled inference: tile layout, whole-image pools gathered over tiles, agreement with the untiled network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fusionkit
from fusionkit.errors import FusionkitError, FusionkitWarning
from fusionkit.evaluation.metrics import psnr
from fusionkit.inference.pipeline import fuse_with_model
from fusionkit.inference.tiling import TilePlan, axis_spans, blend_tiles, tile_batches, tiled_apply
from fusionkit.wholeimage import WholeImagePool, bilinear_matrix, pooling_groups, pooling_matrix, upsample_like


@pytest.mark.parametrize("length, size", [(84, 20), (130, 12), (7, 20), (20, 20), (333, 1), (5, 3)])
def test_pooling_matrix_matches_adaptive_pooling(length, size):
    x = torch.randn(2, 3, 4, length, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(x, (4, size))
    assert torch.allclose(x @ pooling_matrix(length, size).T, expected, atol=1e-12)


@pytest.mark.parametrize("out_length, in_length", [(84, 20), (130, 12), (20, 84), (5, 5), (333, 7), (3, 1)])
def test_bilinear_matrix_matches_interpolate(out_length, in_length):
    x = torch.randn(2, 3, 4, in_length, dtype=torch.float64)
    expected = F.interpolate(x, size=(4, out_length), mode="bilinear", align_corners=False)
    assert torch.allclose(x @ bilinear_matrix(out_length, in_length).T, expected, atol=1e-12)


@pytest.mark.parametrize("size, tile, overlap, multiple", [(336, 128, 32, 4), (520, 192, 64, 4), (100, 64, 30, 4), (96, 128, 32, 4), (77, 20, 5, 1), (2048, 1024, 64, 4), (256, 128, 32, 4)])
def test_axis_spans_cover_the_axis_and_own_it_once(size, tile, overlap, multiple):
    spans = axis_spans(size, tile, overlap, multiple)
    assert spans[0].start == 0 and spans[-1].start + spans[-1].length == size
    owned = torch.zeros(size, dtype=torch.int64)
    for span in spans:
        assert span.start % multiple == 0 and span.length % multiple == 0 and span.length <= tile
        assert span.length == min(tile, size) or span is spans[-1] and span.length > overlap
        assert span.start <= span.own_start < span.own_end <= span.start + span.length
        assert span.own_start % multiple == 0
        owned[span.own_start : span.own_end] += 1
    assert bool((owned == 1).all())
    for left, right in zip(spans, spans[1:]):
        assert left.start + left.length - right.start >= overlap  # neighbours share at least the overlap
    assert sum(span.length for span in spans) < size + len(spans) * (overlap + multiple)  # no needless rerun


def test_plan_rejects_impossible_tiles():
    with pytest.raises(FusionkitError, match="^tile must be a multiple of 4"):
        TilePlan(64, 64, tile=30, overlap=8, multiple=4)
    with pytest.raises(FusionkitError, match="larger than overlap "):
        TilePlan(64, 64, tile=32, overlap=30, multiple=4)


@pytest.mark.parametrize("size", [1, (1, None), (None, 1), (20, 12), (None, 5)])
def test_whole_image_pool_is_adaptive_pooling_outside_a_tiled_run(size):
    x = torch.randn(2, 3, 17, 23)
    assert torch.equal(WholeImagePool(size)(x), F.adaptive_avg_pool2d(x, size if isinstance(size, tuple) else (size, size)))
    grid = torch.randn(2, 3, 5, 4)
    assert torch.equal(upsample_like(grid, x), F.interpolate(grid, size=(17, 23), mode="bilinear", align_corners=False))


class _Gate(nn.Module):
    """Squeeze-and-excitation without learned layers: only whole-image statistics, no convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = WholeImagePool(1)

    def forward(self, x):
        return x * torch.sigmoid(4 * self.pool(x))


class _Strips(nn.Module):
    """Strip and pyramid pooling without convolutions: every output pixel depends on far-away pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.grids = nn.ModuleList([WholeImagePool(7), WholeImagePool((5, 3))])
        self.columns, self.rows = WholeImagePool((1, None)), WholeImagePool((None, 1))

    def forward(self, x):
        h, w = x.shape[-2:]
        out = x + self.columns(x).expand(-1, -1, h, w) * self.rows(x).expand(-1, -1, h, w)
        for pool in self.grids:
            out = out + upsample_like(pool(x), x)
        return out


class _PointwiseNet(nn.Module):
    """Pointwise layers and whole-image pools at full and quarter resolution; tiles must reproduce it exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second, self.head = _Strips(), _Strips(), _Gate()

    def forward(self, x):
        low = F.avg_pool2d(x, 4)  # a 1/4-resolution branch, like a strided backbone
        low = self.second(torch.tanh(self.first(low)))
        return self.head(x + F.interpolate(low, scale_factor=4, mode="nearest"))


def test_whole_image_pools_are_exact_in_tiles():
    """Without convolutions there is no border effect: tiles give the whole-image output to float precision."""
    net = _PointwiseNet()
    x = torch.randn(2, 3, 200, 296) + torch.linspace(-3, 3, 296)  # brightness varies across the image
    whole = net(x)
    tiled = tiled_apply(net, x, tile=64, overlap=16, multiple=4)
    assert torch.allclose(tiled, whole, atol=1e-5), float((tiled - whole).abs().max())
    naive = blend_tiles(lambda window, tile: net(window), x, TilePlan(200, 296, 64, 16, 4))
    assert float((naive - whole).abs().max()) > 0.5  # the statistics of one tile are not the image's


def test_pools_are_gathered_block_by_block():
    net = _PointwiseNet()
    groups = pooling_groups(net)
    assert sorted(set(groups.values())) == ["first", "head", "second"]
    assert list(groups.values()).count("first") == 4  # the ModuleList's pools belong to the block
    calls = []
    net.register_forward_pre_hook(lambda module, args: calls.append(1))
    tiled_apply(net, torch.randn(1, 3, 128, 128), tile=64, overlap=16, multiple=4)
    tiles = len(TilePlan(128, 128, 64, 16, 4).tiles())
    assert tiles == 9 and len(calls) == 4 * tiles  # three gathering passes and the output pass


def _strongly_attending(student: str) -> nn.Module:
    """A student whose attention matters: random weights and batch-norm statistics, as after training."""
    torch.manual_seed(0)
    model = fusionkit.create("student", student, width=16, head="kd_upsample").eval()  # regresses pixels
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize("student", ["se_strip", "dense_fusion"])
def test_tiled_student_with_whole_image_attention_matches_untiled(student):
    model = _strongly_attending(student)
    x = torch.randn(1, 6, 336, 520) + torch.linspace(-2, 2, 520)
    to_unit = lambda y: ((y + 1) / 2).clamp(0, 1)  # noqa: E731
    with torch.no_grad():
        whole = to_unit(model(x))
        tiled = to_unit(tiled_apply(model, x, tile=192, overlap=64, multiple=model.multiple_of))
        naive = to_unit(blend_tiles(lambda window, tile: model(window), x, TilePlan(336, 520, 192, 64, 4)))
    assert float(psnr(tiled, whole)) >= 40
    assert float(psnr(naive, whole)) < 38  # the model really depends on whole-image statistics


def test_fuse_of_an_odd_sized_photo_in_tiles_matches_untiled():
    """The fuse path (padding to the network's multiple, normalisation, cropping back) on a real photograph."""
    from skimage import data as skdata
    from skimage.transform import resize

    photo = torch.from_numpy(resize(skdata.astronaut(), (333, 517), anti_aliasing=True)).permute(2, 0, 1).float()
    exposures = torch.stack([(photo * 0.4).clamp(0, 1), (photo * 1.8).clamp(0, 1)])[None]
    model = _strongly_attending("se_strip")
    whole = fuse_with_model(model, exposures)
    for tile, overlap in ((192, 64), (256, 64)):
        tiled = fuse_with_model(model, exposures, tile=tile, overlap=overlap)
        assert tiled.shape == whole.shape == (1, 3, 333, 517)
        assert float(psnr(tiled, whole)) >= 40, (tile, overlap)
    assert float(whole.std()) > 0.05  # a real picture, not a flat output that would agree trivially


def test_model_without_whole_image_pools_takes_one_pass():
    model = fusionkit.create("student", "kd_baseline", width=8).eval()
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with torch.no_grad():
        tiled_apply(model, torch.randn(1, 6, 96, 160), tile=64, overlap=16, multiple=4)
    assert len(calls) == len(TilePlan(96, 160, 64, 16, 4).tiles()) == 6


def test_feature_map_at_an_unplaceable_scale_is_a_clear_error():
    pool = WholeImagePool(1)
    with pytest.raises(FusionkitError, match="cannot run in tiles"):
        tiled_apply(lambda window: pool(window[..., :5, :]), torch.randn(1, 1, 64, 64), tile=32, overlap=8, multiple=4)


@pytest.mark.parametrize("attention, spatial, flagged", [
    ("eca", "strip", ["head.attention (EcaModule)"]),
    ("se", "gc", ["bottleneck_attention.0 (GlobalContext)", "bottleneck_attention.1 (GlobalContext)"]),
    ("se", "nl", ["bottleneck_attention.0 (NonLocalAttn)", "bottleneck_attention.1 (NonLocalAttn)"]),
])
def test_tiling_warns_about_blocks_that_pool_without_whole_image_pool(attention, spatial, flagged):
    model = fusionkit.create("student", "se_strip", width=16, channel_attention=attention, spatial_attention=spatial).eval()
    with pytest.warns(FusionkitWarning) as record, torch.no_grad():
        tiled_apply(model, torch.randn(1, 6, 128, 160), tile=64, overlap=16, multiple=4)
    assert len(record) == 1
    message = str(record[0].message)
    assert all(name in message for name in flagged) and "only approximates" in message


@pytest.mark.parametrize("student", ["se_strip", "kd_baseline"])
def test_tiling_is_silent_for_whole_image_pools(student, recwarn):
    model = fusionkit.create("student", student, width=8).eval()
    with torch.no_grad():
        tiled_apply(model, torch.randn(1, 6, 128, 160), tile=64, overlap=16, multiple=4)
    assert not [w for w in recwarn if issubclass(w.category, FusionkitWarning)]


class _Reused(nn.Module):
    """One pool run on two different tensors, and one block applied twice in a row."""

    def __init__(self) -> None:
        super().__init__()
        self.pool, self.block = WholeImagePool((1, None)), _Strips()

    def forward(self, x):
        h, w = x.shape[-2:]
        x = x * self.pool(x).expand(-1, -1, h, w) + self.pool(torch.exp(-x)).expand(-1, -1, h, w)
        return self.block(torch.tanh(self.block(x)))


def test_reused_pools_and_blocks_keep_their_own_statistics():
    net = _Reused()
    x = torch.randn(1, 3, 120, 200) + torch.linspace(-2, 2, 120)[:, None]
    assert torch.allclose(tiled_apply(net, x, tile=48, overlap=16, multiple=4), net(x), atol=1e-5)


def test_tile_batches_group_tiles_of_one_shape():
    tiles = TilePlan(200, 296, 64, 16, 4).tiles()
    groups = tile_batches(tiles, 3)
    flat = [tile for group in groups for tile in group]
    assert len(flat) == len(tiles) and set(flat) == set(tiles)
    assert all(len(group) <= 3 and len({(t.rows.length, t.cols.length) for t in group}) == 1 for group in groups)
    assert max(len(group) for group in groups) == 3
    assert [len(group) for group in tile_batches(tiles, 1)] == [1] * len(tiles)


@pytest.mark.parametrize("batch", [2, 5, 100])
def test_batched_tiles_give_the_same_output_with_fewer_forwards(batch):
    """Whole-image pools and feathering see each tile of a batch at its own place."""
    net = _PointwiseNet()
    x = torch.randn(2, 3, 200, 296) + torch.linspace(-3, 3, 296)
    calls = []
    net.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    one = tiled_apply(net, x, tile=64, overlap=16, multiple=4)
    single_calls, calls[:] = len(calls), []
    batched = tiled_apply(net, x, tile=64, overlap=16, multiple=4, batch=batch)
    assert torch.allclose(batched, one, atol=1e-6)
    most = max(len(group) for group in tile_batches(TilePlan(200, 296, 64, 16, 4).tiles(), batch))
    assert len(calls) < single_calls and max(calls) == 2 * most and most == min(batch, 15)  # 15 tiles are 64x64


def test_batched_tiles_of_a_student_match_one_at_a_time():
    model = _strongly_attending("se_strip")
    exposures = torch.rand(1, 2, 3, 150, 230)
    with torch.no_grad():
        one = fuse_with_model(model, exposures, tile=64, overlap=16)
        batched = fuse_with_model(model, exposures, tile=64, overlap=16, tile_batch=4)
    assert torch.allclose(batched, one, atol=1e-5), float((batched - one).abs().max())


def test_tile_batch_below_one_is_a_clear_error():
    with pytest.raises(FusionkitError, match="^tile_batch must be at least 1"):
        blend_tiles(lambda windows, tiles: windows, torch.zeros(1, 1, 8, 8), TilePlan(8, 8, 4, 0), batch=0)
