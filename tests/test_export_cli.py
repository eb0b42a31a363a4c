"""python -m scripts.export: files for each view, the .npz equal to the model's maps, PNG and SVG of the
figure's size, and messages for bad views."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.detr.scenes import make_scene
from models.registry import load_model
from scripts.export import main, parse_views, text_maps
from viz.export import read_config, static_export_available

ROOT = Path(__file__).parents[1]
TEXT = "Batch export draws what the app draws. 注意力"


def test_parse_views():
    assert parse_views("0:1, 2:mean,1:*", 3, 2) == [(0, 1), (2, "mean"), (1, 0), (1, 1)]
    assert len(parse_views("all", 6, 12)) == 72
    for bad, message in [("6:0", "outside"), ("0:12", "head is"), ("x", "LAYER:HEAD"), ("1", "LAYER:HEAD")]:
        with pytest.raises(ValueError, match=message):
            parse_views(bad, 6, 12)


def test_text_views_as_npz_html_json(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    main(["--model", "all-MiniLM-L6-v2", "--text", str(source), "--views", "3:5,1:max", "--formats",
          "npz,html,json", "--out", str(out)])  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "layer1_headmax.html", "layer1_headmax.json", "layer1_headmax.npz",
        "layer3_head5.html", "layer3_head5.json", "layer3_head5.npz",
    ]  # fmt: skip
    tokens, maps = text_maps(load_model("all-MiniLM-L6-v2"), TEXT)
    data = np.load(out / "layer3_head5.npz")
    np.testing.assert_array_equal(data["matrix"], maps.head(3, 5))
    np.testing.assert_array_equal(np.load(out / "layer1_headmax.npz")["matrix"], maps.head(1, "max"))
    assert data["row_tokens"].tolist() == tokens
    view = read_config((out / "layer3_head5.json").read_text())
    assert (view["layer"], view["head"], view["text"]) == (3, 5, TEXT)
    assert json.loads(str(data["view"]))["model"] == "all-MiniLM-L6-v2"


@pytest.mark.skipif(not static_export_available(), reason="kaleido or chromium is missing")
def test_png_and_svg_through_the_command_line(tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(make_scene(3).image).save(image)
    out = tmp_path / "figs"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.export", "--model", "detr-shapes", "--image", str(image), "--views",
         "0:0,2:mean", "--formats", "png,svg,npz", "--scale", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6/6" in result.stderr  # the progress bar reached every file
    for name in ("layer0_head0", "layer2_headmean"):
        matrix = np.load(out / f"{name}.npz")["matrix"]
        assert matrix.shape[0] == matrix.shape[1] and np.allclose(matrix.sum(-1), 1, atol=1e-5)
        png = Image.open(out / f"{name}.png")
        svg = ET.parse(out / f"{name}.svg").getroot()
        width, height = int(float(svg.get("width"))), int(float(svg.get("height")))
        assert png.size == (2 * width, 2 * height)


def test_a_bad_view_is_a_message_not_a_traceback(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "all-MiniLM-L6-v2", "--text", str(source), "--views", "9:0", "--out", str(tmp_path)])
    assert exit_.value.code == 2


def test_the_command_line_imports_no_streamlit():
    probe = "import sys, scripts.export; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
