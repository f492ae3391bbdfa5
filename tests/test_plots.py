import numpy as np
from PIL import Image

from prodlib import plots


def test_image_grid_shows_unreadable_files_as_grey_tiles(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(good)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    fig = plots.image_grid([("row", [str(good), str(tmp_path / "bad.jpg"), str(tmp_path / "gone.jpg")])],
                           per_row=4)
    axes = fig.axes
    assert len(axes) == 4
    shown = [ax.images[0].get_array() for ax in axes if ax.images]
    assert len(shown) == 3  # the fourth column is blank
    assert shown[0].max() == 0 and shown[1].min() == 200 and shown[2].min() == 200
    assert axes[0].get_ylabel() == "row"


def test_array_grid_clips_values():
    fig = plots.array_grid([("x", np.array([[[[2.0, -1.0, 0.5]]]]))])
    assert fig.axes[0].images[0].get_array().tolist() == [[[1.0, 0.0, 0.5]]]
