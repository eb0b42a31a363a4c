"""Why DETR's gradient relevance puts about half its mass inside the detection's box (issue 14).

    .venv/bin/python -m scripts.measure_detr_relevance [--seeds 60] [--first 1000000000] [--r50 2]

For the shipped `detr-shapes` detector's best three detections (score >= 0.7) of generated scenes
(`make_scene(seed, 128)`, 8 x 8 feature cells of 16 x 16 pixels; by default held-out scenes), prints each
map's share inside the detection's box under three measures, by box size and by score, and the same for the
shapes architecture and DETR-R50 with random weights (the control: their "detections" mean nothing, so the
measure must give chance).

Maps (the detection query's row of R_qi, or of one attention):
  chefer     Chefer et al.'s rules, `models/explain/relevance.py` (their `generate_ours`, use_lrp=False)
  direct     the same with R̄_ii = I in rule 10: the decoder's cross-attention where it reads
  spread     chefer − direct: what R̄_ii − I (the encoder's relevance, eq. 8-9: rows scaled to sum to 1)
             spreads. Each of its rows sums to 1 wherever the encoder added anything, so its mass equals
             direct's: rule 10 gives the encoder's mixing exactly half of the map
  no_mix     R̄_ii kept, the queries not mixed (no R_qi += Ā·R_qi, R̄_qq = I)
  no_norm    the authors' `normalize_self_attention=False` (R_qq, R_ii unnormalised in rule 10)
  grad_last  Ā of the last cross-attention alone (∇A ⊙ A, positive part, head mean)
  raw_last   the last layer's cross-attention, head mean (the page's raw map)
Measures (each beside chance, its value for an even map):
  centre     mass of the cells whose centre lies in the box
  area       each cell's mass spread evenly over its pixels (`inspect.share_inside_box`, the page's)
  bilinear   the map upsampled to the image's pixels, bilinear (align_corners=False, as the authors'
             ViT and CLIP notebooks; their DETR notebook draws the h x w map), its mass over the box
"""

import argparse

import numpy as np
import torch

from models.detr.api import Detector, run_detr
from models.detr.inspect import cell_extent, share_inside_box, upsample
from models.detr.scenes import EVAL_SEED_OFFSET, make_scene
from models.explain.inputs import DetrFeatures, detr_features
from models.explain.relevance import detr_target, normalise_residual, self_relevance, weighted_maps
from models.registry import load_model

MAPS = ("chefer", "direct", "spread", "no_mix", "no_norm", "grad_last", "raw_last")
MEASURES = ("centre", "area", "bilinear")
SIZE_BINS = ((0, 1.5), (1.5, 2), (2, 2.5), (2.5, 3), (3, 99))  # the box's shorter side, in feature cells


def rule_variants(enc: list, dec: list, cross: list, q: int) -> dict[str, torch.Tensor]:
    """Row q of R_qi under Chefer's rules and the variants above, from Ā (Tq, Tk) per layer."""
    r_ii = self_relevance(enc)
    r_ii_bar = normalise_residual(r_ii)

    def rules(r_ii_bar: torch.Tensor, mix: bool = True, normalise: bool = True) -> torch.Tensor:
        r_qq, r_qi = torch.eye(cross[0].shape[0], dtype=r_ii.dtype), torch.zeros_like(cross[0])
        for a_self, a_cross in zip(dec, cross, strict=True):
            if mix:
                r_qq, r_qi = r_qq + a_self @ r_qq, r_qi + a_self @ r_qi
            r_qi = r_qi + (normalise_residual(r_qq) if normalise else r_qq).T @ a_cross @ r_ii_bar
        return r_qi[q]

    full, direct = rules(r_ii_bar), rules(torch.eye(r_ii.shape[0], dtype=r_ii.dtype))
    return {
        "chefer": full,
        "direct": direct,
        "spread": full - direct,
        "no_mix": rules(r_ii_bar, mix=False),
        "no_norm": rules(r_ii, normalise=False),
        "grad_last": cross[-1][q],
    }


def centre_share(m: np.ndarray, box, cell, image_size) -> float:
    """Mass of the cells whose centre lies in the box [x0, x1) x [y0, y1)."""
    rows, cols = (np.arange(m.shape[0]) + 0.5) * cell[0], (np.arange(m.shape[1]) + 0.5) * cell[1]
    inside = np.outer((rows >= box[1]) & (rows < box[3]), (cols >= box[0]) & (cols < box[2]))
    return float(m[inside].sum() / m.sum()) if m.sum() > 0 else 0.0


def bilinear_share(m: np.ndarray, box, cell, image_size) -> float:
    """The map upsampled over the cells' extent in pixels, cut at the image (the last cells may overhang
    it), its mass over the box (partial pixels by area)."""
    size = (int(round(m.shape[0] * cell[0])), int(round(m.shape[1] * cell[1])))
    up = upsample(m, size)[: image_size[0], : image_size[1]].clip(min=0)
    return share_inside_box(up, box, (1.0, 1.0), image_size)


SHARE = {"centre": centre_share, "area": share_inside_box, "bilinear": bilinear_share}


def explain(model, features: DetrFeatures, query: int) -> tuple[dict[str, np.ndarray], float]:
    """Every map above for one query's best class logit, (h, w) each, and how much the encoder added to
    the rows of R_ii (the identity's row sums to 1) on average where the direct map reads."""
    with torch.enable_grad():
        out = model.predict(features.src, features.mask, features.pos, capture=True)
        y = detr_target(out.pred_logits[0], out.pred_boxes[0], query, "class", None)
        att = out.attentions
        enc, dec, cross = weighted_maps(y, [att.encoder, att.decoder_self, att.decoder_cross])
    maps = rule_variants(enc, dec, cross, query)
    maps["raw_last"] = att.decoder_cross[-1].probs[0, :, query].detach().mean(0)
    r_ii = self_relevance(enc)
    added = (r_ii - torch.eye(r_ii.shape[0], dtype=r_ii.dtype)).sum(-1)  # (HW,)
    encoder_added = float(maps["direct"] @ added / maps["direct"].sum())
    shape = (out.h, out.w)
    return {k: v.detach().double().numpy().reshape(shape) for k, v in maps.items()}, encoder_added


def pixel_cells(n: int, size: float, cells: int) -> np.ndarray:
    """(n,) the feature cell each of n pixels' centres lies in."""
    return np.minimum(((np.arange(n) + 0.5) // size).astype(int), cells - 1)


def box_row(maps: dict, box, cell, image_size, masks=None) -> dict:
    """Shares inside `box` of every map under every measure, chance, mass, and (given the scene's object
    masks) the share on the box's own object's pixels and on other objects' pixels."""
    shape = next(iter(maps.values())).shape
    row = {"side": min((box[2] - box[0]) / cell[1], (box[3] - box[1]) / cell[0])}
    for meas in MEASURES:
        row["chance", meas] = SHARE[meas](np.ones(shape), box, cell, image_size)
    for name, m in maps.items():
        m = m.clip(min=0)
        row["mass", name] = float(m.sum())
        for meas in MEASURES:
            row[name, meas] = SHARE[meas](m, box, cell, image_size)
        peak = np.eye(m.size)[m.argmax()].reshape(shape)  # the pointing game: is the top cell inside?
        row[name, "argmax_in"] = centre_share(peak, box, cell, image_size)
        if masks is not None and len(masks):
            rows, cols = (pixel_cells(image_size[k], cell[k], shape[k]) for k in (0, 1))
            px = m[rows][:, cols]  # (H, W) each pixel's cell's value
            own = int(np.argmax([share_inside_box(k.astype(float), box, (1, 1), image_size) for k in masks]))
            others = np.delete(masks, own, 0).any(0) & ~masks[own]
            row[name, "own_obj"] = float(px[masks[own]].sum() / px.sum())
            row[name, "other_obj"] = float(px[others].sum() / px.sum())
    return row


def detection_rows(detector: Detector, seeds, per_scene: int = 3, threshold: float = 0.7) -> list[dict]:
    """One row per detection: the best `per_scene` detections with score >= threshold of each scene."""
    rows = []
    for seed in seeds:
        scene = make_scene(seed, 128)
        result = run_detr(detector, scene.image, threshold=threshold)
        features = detr_features(detector, scene.image)
        cell = cell_extent(result)
        for query, box, score in list(zip(result.query_index, result.boxes, result.scores, strict=True))[
            :per_scene
        ]:
            maps, added = explain(detector.model, features, int(query))
            row = box_row(maps, box, cell, result.image_size, scene.masks)
            rows.append(row | {"seed": seed, "query": int(query), "score": float(score)})
            rows[-1]["encoder_added"] = added
    return rows


def true_box_rows(detector: Detector, seeds) -> list[dict]:
    """For a model whose detections mean nothing: its best query's maps over each true box of the scene."""
    rows = []
    for seed in seeds:
        scene = make_scene(seed, 128)
        result = run_detr(detector, scene.image, threshold=0.0)
        maps, _ = explain(detector.model, detr_features(detector, scene.image), int(result.query_index[0]))
        rows += [box_row(maps, box, cell_extent(result), result.image_size) for box in scene.boxes]
    return rows


def values(rows: list[dict], key) -> np.ndarray:
    return np.array([r[key] for r in rows])


def table(rows: list[dict], title: str) -> None:
    print(f"\n{title}: {len(rows)} boxes")
    print("mean share inside the box (median; how many > 0.5; mean ratio to chance; least ratio)")
    print(f"{'map':<10}" + "".join(f"{m:>37}" for m in MEASURES) + f"{'argmax in':>11}")
    chance = {m: values(rows, ("chance", m)) for m in MEASURES}
    print(f"{'chance':<10}" + "".join(f"{chance[m].mean():>37.3f}" for m in MEASURES))
    for name in MAPS:
        cells = []
        for m in MEASURES:
            s = values(rows, (name, m))
            ratio = (s / chance[m])[chance[m] > 0]  # a box may hold no cell's centre
            cells.append(f"{s.mean():.3f} ({np.median(s):.2f}; {(s > 0.5).sum():>3}; {ratio.mean():4.1f}x; "
                         f"{ratio.min():4.2f}x)")  # fmt: skip
        hits = values(rows, (name, "argmax_in")).sum()
        print(f"{name:<10}" + "".join(f"{c:>37}" for c in cells) + f"{hits:>11.0f}")
    if "encoder_added" in rows[0]:
        added = values(rows, "encoder_added")
        print(f"the encoder's addition to R_ii's rows where the direct map reads (the identity: 1): mean "
              f"{added.mean():.3f}, median {np.median(added):.3f}, least {added.min():.3f}, "
              f"most {added.max():.3f}")  # fmt: skip
    if (MAPS[0], "own_obj") in rows[0]:
        print("mass, and share (area) on the box's own object's pixels / other objects' pixels / elsewhere:")
        for name in ("chefer", "direct", "spread", "raw_last"):
            own, other = values(rows, (name, "own_obj")).mean(), values(rows, (name, "other_obj")).mean()
            mass = values(rows, ("mass", name)).mean()
            rest = 1 - own - other
            print(f"  {name:<10} mass {mass:7.4f}  own {own:.3f}  others {other:.3f}  background {rest:.3f}")


def breakdown(rows: list[dict], key: str, bins, label: str) -> None:
    print(f"\nby {label} (area measure): n, chance, chefer, direct, spread, raw_last; chefer > 0.5")
    for lo, hi in bins:
        sel = [r for r in rows if lo <= r[key] < hi]
        if sel:
            means = [values(sel, k).mean() for k in (("chance", "area"), *((m, "area") for m in MAPS[:3]))]
            means.append(values(sel, ("raw_last", "area")).mean())
            above = (values(sel, ("chefer", "area")) > 0.5).sum()
            print(f"  [{lo}, {hi}): {len(sel):>4}  " + "  ".join(f"{v:.3f}" for v in means) + f"  {above}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=60, help="how many scenes for detr-shapes")
    held_out = "default: the held-out scenes, which training never draws; 0: the first training scenes"
    parser.add_argument("--first", type=int, default=EVAL_SEED_OFFSET, help=f"the first seed ({held_out})")
    parser.add_argument("--r50", type=int, default=2, help="scenes for DETR-R50 with random weights; 0 skips")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(args.first, args.first + args.seeds)
    rows = detection_rows(load_model("detr-shapes", kind="detr"), seeds)
    table(rows, f"detr-shapes, seeds {seeds[0]} to {seeds[-1]}, the best three detections of each")
    breakdown(rows, "side", SIZE_BINS, "the box's shorter side in feature cells")
    breakdown(rows, "score", ((0.7, 0.9), (0.9, 0.97), (0.97, 0.99), (0.99, 1.01)), "score")
    big = [r for r in rows if r["side"] >= 3]
    table(big, "detr-shapes, the detections whose box spans at least 3 feature cells each way")
    untrained = load_model("detr-small-untrained", kind="detr")
    table(detection_rows(untrained, seeds, threshold=0.0), "detr-shapes' shape, random weights")
    if args.r50:
        r50 = load_model("detr-r50-untrained", kind="detr")
        few = seeds[: args.r50]
        table(detection_rows(r50, few, threshold=0.0), "DETR-R50 random weights, best 3 queries")
        table(true_box_rows(r50, few), "DETR-R50 random weights, best query over each true box")


if __name__ == "__main__":
    main()
