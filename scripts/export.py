"""Batch export of attention views: a model, a text file or an image, and the views wanted -> a folder of
PNG, SVG, NPZ (and HTML, JSON) files, drawn as the app draws them (viz.export.matrix_figure, the heatmap core)
and written by the same writers as the app's Export menu (viz/export.py). No Streamlit.

    python -m scripts.export --model all-MiniLM-L6-v2 --text notes.txt --views 0:0,3:5,5:mean --out figs
    python -m scripts.export --model detr-shapes --image scene.png --views all --formats png,npz --out figs

A view is LAYER:HEAD (HEAD a number, "mean" or "max"), LAYER:* (every head of a layer) or "all". For a
text model the maps are its self-attention (query × key wordpieces); for DETR the encoder's self-attention
over feature-map positions, or with --family cross the decoder's cross-attention (object query × position).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from models.attention import LAZY
from models.bert import TextModel
from models.detr.api import Detector, run_detr
from models.errors import ModelLoadError
from models.maps import REDUCTIONS, AttentionMaps
from models.readout import readout
from models.registry import load_model
from viz.export import ExportError, config_json, matrix_figure, npz_bytes, standalone_html, write_static

FORMATS = ("png", "svg", "npz", "html", "json")


def parse_views(spec: str, n_layers: int, n_heads: int) -> list[tuple[int, int | str]]:
    """ "0:0,3:5,2:mean,4:*" or "all" -> [(layer, head)], checked against the model's shape."""
    views = []
    for part in spec.split(","):
        part = part.strip()
        if part == "all":
            views += [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
            continue
        layer_text, sep, head_text = part.partition(":")
        if not sep or not layer_text.isdigit():
            raise ValueError(f"view {part!r}: write LAYER:HEAD, LAYER:* or all")
        layer = int(layer_text)
        if layer >= n_layers:
            raise ValueError(f"view {part!r}: layer {layer} is outside 0..{n_layers - 1}")
        if head_text == "*":
            views += [(layer, head) for head in range(n_heads)]
        elif head_text in REDUCTIONS:
            views.append((layer, head_text))
        elif head_text.isdigit() and int(head_text) < n_heads:
            views.append((layer, int(head_text)))
        else:
            raise ValueError(f"view {part!r}: head is 0..{n_heads - 1}, mean or max")
    return list(dict.fromkeys(views))


def text_maps(model: TextModel, text: str) -> tuple[list[str], AttentionMaps]:
    """The text page's computation: one forward with a LAZY capture, maps on demand."""
    encoding = model.encode(text)
    family = readout(encoder=model.run(encoding.ids, capture=LAZY).attentions)["encoder"]
    return encoding.tokens, AttentionMaps(family)


class CrossMaps:
    """DETR's decoder cross-attention (L, nh, N, h, w) as (N, h·w) maps with the AttentionMaps interface."""

    def __init__(self, cross: np.ndarray):
        self.cross = cross.reshape(*cross.shape[:3], -1)  # (L, nh, N, HW)
        self.n_layers, self.n_heads = self.cross.shape[:2]

    def head(self, layer: int, head) -> np.ndarray:
        maps = self.cross[layer]
        return maps.mean(0) if head == "mean" else maps.max(0) if head == "max" else maps[head]


def image_maps(detector: Detector, image: Image.Image, family: str):
    result = run_detr(detector, np.asarray(image.convert("RGB")))
    positions = [f"({i // result.w},{i % result.w})" for i in range(result.h * result.w)]
    if family == "cross":
        queries = [f"query {i}" for i in range(result.decoder_cross.shape[2])]
        return queries, positions, CrossMaps(result.decoder_cross)
    return positions, positions, AttentionMaps(result.encoder_attention)


def export(args) -> list[Path]:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}: choose from {', '.join(FORMATS)}")
    model = load_model(args.model, args.device)
    if isinstance(model, TextModel):
        if args.text is None:
            raise ValueError(f"{args.model} is a text model: give --text FILE")
        text = Path(args.text).read_text(encoding="utf-8")
        rows, maps = text_maps(model, text)
        cols, source = rows, {"input": str(args.text), "text": text}
        titles = ("query (attending)", "key (attended to)")
    elif isinstance(model, Detector):
        if args.image is None:
            raise ValueError(f"{args.model} is a DETR: give --image FILE")
        rows, cols, maps = image_maps(model, Image.open(args.image), args.family)
        source = {"input": str(args.image), "family": args.family}
        titles = (
            ("object query", "position (row,col)") if args.family == "cross" else ("position", "position")
        )
    else:
        raise ValueError(
            f"{args.model} is neither a BERT-family encoder nor a DETR, which this command draws"
        )
    views = parse_views(args.views, maps.n_layers, maps.n_heads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, static = [], []
    bar = tqdm(total=len(views) * len(formats), unit="file", desc="export", file=sys.stderr)
    for layer, head in views:
        matrix = maps.head(layer, head)
        name = f"layer{layer}_head{head}"
        title = f"{args.model}: layer {layer}, head {head}" if isinstance(head, int) else (
            f"{args.model}: layer {layer}, {head} over heads")  # fmt: skip
        fig = matrix_figure(matrix, rows, cols, title, *titles, zmin=0.0)
        view = {"page": "export", "model": args.model, "layer": layer, "head": head, **source}
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            if fmt == "npz":
                path.write_bytes(npz_bytes({"matrix": matrix, "row_tokens": rows, "col_tokens": cols}, view))
            elif fmt == "html":
                path.write_text(standalone_html(fig), encoding="utf-8")
            elif fmt == "json":
                path.write_text(config_json(view), encoding="utf-8")
            else:  # png and svg: drawn together below, by one headless chrome
                static.append((fig, path, fmt, args.scale if fmt == "png" else 1))
            if fmt not in ("png", "svg"):
                bar.update()
            written.append(path)
    if static:
        write_static(static, progress=bar.update)
    bar.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an embedded name, a fetched name or a local path")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="a UTF-8 text file, for a text model")
    source.add_argument("--image", help="an image file, for DETR")
    parser.add_argument(
        "--views", default="0:0", help="LAYER:HEAD, LAYER:*, LAYER:mean, all; comma-separated"
    )
    parser.add_argument("--formats", default="png,svg,npz", help=f"comma-separated, of {', '.join(FORMATS)}")
    parser.add_argument("--scale", type=float, default=2.0, help="PNG pixels per CSS pixel")
    parser.add_argument("--family", choices=["encoder", "cross"], default="encoder", help="DETR's maps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="the folder to write into (created)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        written = export(args)
    except (ValueError, OSError, ModelLoadError, ExportError) as err:
        parser.exit(2, f"export: {err}\n")
    print(f"{len(written)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
