"""The hover map's data: neighbours in code space, the sprite sheet, and a page that no class name can break."""
import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import aelab
from aelab import latent
from pages.shared.hover_map import html


def test_nearest_in_code_space_is_exact_and_skips_the_point_itself():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 12)).astype(np.float32)
    codes[7] = codes[8]   # a duplicate: each is the other's nearest at distance 0, never itself
    idx, dist = latent.nearest_in_code_space(codes, k=10)
    full = np.linalg.norm(codes[:, None] - codes[None], axis=2)
    np.fill_diagonal(full, np.inf)
    for i in (0, 7, 8, 299):
        assert i not in idx[i]
        assert dist[i] == pytest.approx(np.sort(full[i])[:10], abs=1e-5)
    assert idx[7][0] == 8 and idx[8][0] == 7 and dist[7][0] == 0
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    assert latent.nearest_in_code_space(codes[:1])[0].shape == (1, 0)


def test_sprite_sheet_tiles_row_by_row():
    images = np.stack([np.full((3, 2), v / 10) for v in range(5)])   # 5 tiles of 3 x 2: 3 columns, 2 rows
    png, cols = latent.sprite_sheet(images)
    sheet = np.asarray(Image.open(io.BytesIO(png)))
    assert cols == 3 and sheet.shape == (6, 6)
    assert sheet[0, 0] == 0 and sheet[0, 2] == 26 and sheet[3, 2] == 102 and sheet[3:, 4:].max() == 0


def test_hover_map_payload_of_a_run(digits, tmp_path):
    cfg = aelab.preset("stacked", "digits")
    cfg.model.hidden, cfg.model.latent, cfg.train.epochs = (16,), 4, 1
    model = aelab.train(cfg, runs_dir=tmp_path, name="r", evaluate=False, dataset=digits).model
    x, y = digits.x_test[:50], digits.y_test[:50]
    codes = latent.encode_images(model, x)
    payload = latent.hover_map(model, x, y, digits.class_names, codes[:, :2] * 3, codes)
    assert len(payload["x"]) == 50 and payload["labels"] == y.tolist() and payload["cols"] == 8
    assert payload["classes"] == list(digits.class_names)
    assert payload["h"] == payload["w"] == 8 and len(payload["neighbours"][0]) == 10
    sprite = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload["sprite"]))))
    assert sprite.shape == (7 * 8, 8 * 8) and np.array_equal(sprite[:8, 8:16], x[1, 0].numpy())
    assert payload["recon"] and payload["recon"] != payload["sprite"] and "z" not in payload
    json.dumps(payload)   # JSON-ready
    in_3d = latent.hover_map(model, x, y, digits.class_names, codes[:, :3], codes)
    assert in_3d["x"] == pytest.approx(codes[:, 0].tolist(), abs=1e-4)
    assert in_3d["z"] == pytest.approx(codes[:, 2].tolist(), abs=1e-4)
    for bad in (codes, codes[:49, :2], codes[:, 0]):   # 4 columns, one row short, one axis
        with pytest.raises(ValueError, match="coords must be"):
            latent.hover_map(model, x, y, digits.class_names, bad, codes)


def test_no_class_name_can_close_the_script():
    payload = {"x": [0.0], "y": [0.0], "labels": [0], "classes": ["</script><script>alert(1)</script>"],
               "sprite": "", "recon": None, "cols": 1, "h": 1, "w": 1, "neighbours": [[]], "distances": [[]]}
    page = html(payload, lambda word: "</script>")   # nor a translation
    assert page.count("</script>") == 1 and "\\u003c/script>\\u003cscript>alert(1)" in page
    assert json.loads(page.split("const DATA = ")[1].split(";\n")[0]) == payload


def test_large_images_are_shrunk_for_the_sprite(tmp_path):
    """An upload of 128 x 128 images: tiles of 32 x 32, so 10,000 of them stay a 3,200-pixel square."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (20, 1, 128, 96), dtype=np.uint8))
    cfg = aelab.preset("stacked", "digits")
    cfg.model.hidden, cfg.model.latent = (8,), 2
    model = aelab.models.build_model(cfg.model, (1, 128, 96), 0, n_classes=2)
    codes = latent.encode_images(model, x)
    payload = latent.hover_map(model, x, np.zeros(20, int), ["a", "b"], codes, codes)
    assert (payload["h"], payload["w"]) == (32, 24)
    sprite = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload["sprite"]))))
    assert sprite.shape == (4 * 32, 5 * 24)
    expected = x[0, 0].float().reshape(32, 4, 24, 4).mean((1, 3))   # the mean of each 4 x 4 block
    assert np.abs(sprite[:32, :24] - expected.numpy()).max() <= 1


def test_the_hover_map_task_draws_the_projection_it_is_given(digits, tmp_path):
    from aelab import tasks

    cfg = aelab.preset("stacked", "digits")
    cfg.model.hidden, cfg.model.latent, cfg.train.epochs = (16,), 4, 1
    aelab.train(cfg, runs_dir=tmp_path, name="r", evaluate=False, dataset=digits)
    run = aelab.RunStore(tmp_path).open("r")
    coords = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    payload = tasks.hover_map(run, 100, coords.tobytes(), 3)
    assert payload["z"] == coords[:, 2].tolist() and len(payload["neighbours"]) == 100 and payload["recon"]
    with pytest.raises(ValueError, match="not 100 points of 2 dimensions"):
        tasks.hover_map(run, 100, coords.tobytes(), 2)
