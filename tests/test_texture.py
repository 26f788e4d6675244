"""The texture channel: its box mean, its values, and a texture-only object it finds."""
import numpy as np
import pytest
import torch

from napari_iem import segment
from napari_iem.engine.texture import box_mean, with_texture


def _brute_box_mean(x, width):
    """Mean over the box of each pixel, the part of it inside the array."""
    half = width // 2
    out = np.empty_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        box = tuple(slice(max(0, i - half), i + half + 1) for i in idx)
        out[idx] = x[box].mean()
    return out


@pytest.mark.parametrize("shape, width", [((13, 17), 5), ((6, 9, 7), 3), ((8, 8), 21)])
def test_box_mean_excludes_the_border(shape, width):
    x = np.random.default_rng(0).uniform(-1, 1, shape)
    got = box_mean(torch.from_numpy(x)[None, None], width, len(shape))[0, 0].numpy()
    np.testing.assert_allclose(got, _brute_box_mean(x, width), atol=1e-12)


def test_the_channel_is_high_on_texture_and_low_on_flat_ground():
    x = torch.zeros(2, 3, 64, 96)
    x[:, 0, :, 48:] = torch.sign(torch.randn(2, 64, 48, generator=torch.Generator().manual_seed(1)))
    assert with_texture(x, 0) is x
    out = with_texture(x, 11)
    assert out.shape == (2, 4, 64, 96) and torch.equal(out[:, :3], x)
    t = out[:, 3]
    assert t.min() >= -1 and t.max() <= 1
    assert (t[:, :, :40] == -1).all() and (t[:, :, 56:] > 0.5).all()  # flat / textured


def test_an_object_of_the_background_colour_but_coarser_texture_is_found():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 < 30 ** 2
    grey = 0.5 + np.where(disc, 0.3, 0.15) * rng.standard_normal((128, 128))  # one mean
    img = (np.clip(np.stack([grey] * 3, -1) * [1.0, 0.9, 0.8], 0, 1) * 255).astype(np.uint8)

    def iou(texture):
        fg = segment(img, preset="photo", texture=texture, check_structure=False,
                     maps=False).labels == 1
        return max((fg & disc).sum() / (fg | disc).sum(), (~fg & disc).sum() / (~fg | disc).sum())

    assert iou(0) < 0.6 < 0.9 < iou(11)  # colour alone cannot tell them apart
