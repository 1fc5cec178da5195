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


def test_a_jobs_chart_follows_its_family_with_the_books_result_where_it_applies():
    """The Train page's chart, empty before Start and live after: the book's 0.2874 for its recipe on its data."""
    import aelab
    from aelab.figures import training_figure

    book = training_figure(aelab.preset("stacked", "fashion-mnist"), {}, {})
    assert [s.y0 for s in book.layout.shapes] == [0.2874] and book.layout.yaxis.range == (0, 0.5748)
    assert book.layout.xaxis.range == (0, 10.1) and not book.data   # nothing drawn before Start
    assert "book, epoch 10: 0.2874" in [a.text for a in book.layout.annotations]
    assert "书" in training_figure(aelab.preset("stacked", "fashion-mnist"), {}, {}, lang="zh").layout.annotations[0].text
    other_data = training_figure(aelab.preset("stacked", "digits"), {}, {"loss": [(0.1, 0.5)]})
    assert not other_data.layout.shapes and [d.mode for d in other_data.data] == ["markers"]
    gan = training_figure(aelab.preset("gan", "fashion-mnist"), {}, {"d_loss": [(0.1, 0.7)], "g_loss": [(0.1, 0.9)]})
    assert len(gan.data) == 2 and not gan.layout.shapes and gan.layout.xaxis.range == (0, 10.1)
