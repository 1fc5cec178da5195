import numpy as np
import pytest
import torch
from torchvision.utils import make_grid

from aelab.figures import image_grid


@pytest.mark.parametrize("n, ncols, scale, pad, size", [(1, 10, None, 2, (28, 28)), (7, 3, None, 2, (28, 28)),
                                                        (20, 10, 1, 2, (8, 8)), (16, 8, 3, 0, (5, 9)),
                                                        (5, 10, None, 4, (64, 64)), (12, 5, 2, 1, (28, 28))])
def test_image_grids_are_torchvisions(n, ncols, scale, pad, size):
    """The pages' grids, drawn with numpy (the server does not import torchvision), are make_grid's to the pixel."""
    images = np.random.default_rng(n).uniform(-0.2, 1.2, (n, *size)).astype(np.float32)   # clipped to [0, 1]
    t = torch.from_numpy(images).clamp(0, 1)[:, None]
    s = scale or max(1, 56 // size[0])
    if s > 1:
        t = torch.nn.functional.interpolate(t, scale_factor=s, mode="nearest")
    expected = (make_grid(t, nrow=ncols, padding=pad, pad_value=1.0)[0].numpy() * 255).round().astype(np.uint8)
    grid = image_grid(images, ncols, scale, pad)
    assert grid.dtype == np.uint8 and grid.shape == expected.shape and np.array_equal(grid, expected)
