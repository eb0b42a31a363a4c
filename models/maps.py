"""Attention maps on demand: one head at a time from q and k, memoised, and summaries by streaming heads.

A page runs the model once per input with `capture=LAZY` (the fused kernel, q, k and v kept) and wraps
each `Family` of the readout in `AttentionMaps`. A view asks for the (Tq, Tk) map of one head; it is one
matmul and a softmax, exactly the forward's computation, and it is kept in a memo bounded in bytes. The
mean or max over heads, per-head statistics and overview thumbnails are computed once per input by
streaming heads, so that nothing ever holds layers × heads × T × T at long lengths (at 4,096 tokens one
map is 64 MiB; a 6 × 12 model's maps would be 4.6 GiB).
"""

import math
import mmap
import threading
from collections import OrderedDict

import numpy as np
import torch

from models.readout import Family

REDUCTIONS = ("mean", "max")  # what a view may ask for instead of one head
MEMO_BYTES = 192 * 2**20  # maps memoised per input; at least two maps are always kept
CHUNK_CELLS = 2**25  # summaries take this many map cells at once (128 MiB in float32), at least one head
BAND_ROWS = 256  # a head's map is computed this many query rows at a time
LAZY_ZEROS_BYTES = 32 * 2**20  # maps this big are written into an anonymous mapping (`lazy_zeros`)

STATISTICS = {
    "entropy": "entropy (bits): mean over queries of -Σ p log2 p; low = focused, log2(T) = uniform",
    "mean_distance": "mean attention distance: mean over queries of Σ_j p_ij |i - j|, in tokens",
    "first_share": "share of attention on the first token ([CLS], or the attention sink of a decoder)",
    "last_share": "share of attention on the last token ([SEP] in BERT)",
    "max_weight": "max weight: mean over queries of the largest weight in the row",
}


def head_statistics(weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """weights (..., Tq, Tk), rows summing to 1 (a fully masked row may be all zero) -> {statistic:
    (...) float64}, e.g. (H,) for a layer's heads."""
    t_q, t_k = weights.shape[-2:]
    w = weights.float()
    offset = t_k - t_q  # queries aligned at the end of the keys, as causal_mask does
    rows = torch.arange(t_q, device=w.device)[:, None] + offset
    distance = (rows - torch.arange(t_k, device=w.device)[None, :]).abs().float()  # (Tq, Tk) |i - j|
    nats = torch.special.xlogy(w, w).sum(-1)  # Σ p ln p per row; 0 ln 0 = 0
    return {  # per-row sums in float32 (a few thousand terms), means over rows in float64
        "entropy": -(nats / math.log(2)).double().mean(-1),
        "mean_distance": torch.einsum("...ij,ij->...i", w, distance).double().mean(-1),
        "first_share": w[..., 0].double().mean(-1),
        "last_share": w[..., -1].double().mean(-1),
        "max_weight": w.amax(-1).double().mean(-1),
    }


def lazy_zeros(shape: tuple[int, int]) -> np.ndarray:
    """float32 zeros whose pages are mapped when first written. Above LAZY_ZEROS_BYTES, an anonymous
    mapping of 4 KiB pages: np.zeros asks the kernel for 2 MiB pages there, and on the 2-core VM a 64 MiB
    map written half (a causal 4,096-token head) then took 140 ms instead of 8 whenever the host had not
    backed those pages yet (every new input, in bench_llama), against a steady 25-35 ms with small pages.
    Below it, np.zeros reuses memory that malloc keeps."""
    if 4 * shape[0] * shape[1] < LAZY_ZEROS_BYTES:
        return np.zeros(shape, dtype=np.float32)
    return np.frombuffer(mmap.mmap(-1, 4 * shape[0] * shape[1]), dtype=np.float32).reshape(shape)


def pool_mean(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """(..., Tq, Tk) -> (..., at most size, at most size), each cell the mean of the block it covers."""
    t_q, t_k = matrix.shape[-2:]
    out = (min(size, t_q), min(size, t_k))
    return torch.nn.functional.adaptive_avg_pool2d(matrix.float(), out)


class AttentionMaps:
    """The attention maps of one family on one input, computed per head on demand.

    Thread-safe: sessions that share an input share one instance (the memo is locked), and no
    method mutates what it returns.
    """

    def __init__(self, family: Family, memo_bytes: int = MEMO_BYTES):
        self.family = family
        self.n_layers, self.n_heads = family.n_layers, family.n_heads
        self.shape = family.shape
        map_bytes = 4 * self.shape[0] * self.shape[1]
        self.memo_bytes = max(memo_bytes, 2 * map_bytes)
        self._memo: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._summary: dict | None = None

    @property
    def nbytes(self) -> int:
        """What this input may hold at most: the captured tensors and a full memo."""
        return self.family.nbytes + self.memo_bytes

    def _memoised(self, key: tuple, compute) -> np.ndarray:
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = compute()
        value.setflags(write=False)  # shared between views and sessions
        with self._lock:
            self._memo[key] = value
            while sum(v.nbytes for v in self._memo.values()) > self.memo_bytes and len(self._memo) > 1:
                self._memo.popitem(last=False)
        return value

    def _check(self, layer: int, head) -> None:
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} is outside 0..{self.n_layers - 1}")
        if head not in REDUCTIONS and not (isinstance(head, (int, np.integer)) and 0 <= head < self.n_heads):
            raise IndexError(f"head {head} is outside 0..{self.n_heads - 1} and not one of {REDUCTIONS}")

    @torch.no_grad()
    def head(self, layer: int, head: int | str) -> np.ndarray:
        """(Tq, Tk) float32, read-only: the weights of one head, or their "mean" or "max" over heads."""
        self._check(layer, head)
        if head in REDUCTIONS:
            return self._memoised((layer, head), lambda: self._reduce(layer, head))
        return self._memoised((layer, head), lambda: self._weights(layer, head))

    @property
    def _read_as_weights(self) -> bool:
        """A head's map is read whole from `Family.weights`: the weights were kept, or q and k are on a
        GPU. Otherwise (q and k on the CPU) the softmax is written straight into the result."""
        return self.family.probs is not None or self.family.q.device.type != "cpu"

    def _weights(self, layer: int, head: int) -> np.ndarray:
        """(Tq, Tk) one head's weights. Under a mask on the CPU, a band of query rows at a time over the
        keys that some row of the band may attend: the keys a causal or sliding-window mask hides from
        the whole band are neither multiplied nor exponentiated, and the result's pages they cover are
        never written (`lazy_zeros`). At 4,096 tokens a causal map then costs about half."""
        family = self.family
        if self._read_as_weights or family.mask is None:
            return family.weights(layer, head).float().cpu().numpy()
        out = lazy_zeros(self.shape)
        written = torch.from_numpy(out)
        mask = family.head_mask(layer, head).numpy()  # (Tq, Tk); numpy's any is 20x torch's on bool
        for r0 in range(0, self.shape[0], BAND_ROWS):
            rows = slice(r0, r0 + BAND_ROWS)
            band = mask[rows]
            seen = np.flatnonzero(band.any(0))
            whole = len(seen) == 0 or not band.any(1).all()  # a row that sees no key: NaN, as the forward
            keys = slice(None) if whole else slice(int(seen[0]), int(seen[-1]) + 1)
            scores = family.scores(layer, head, rows, keys)
            written[rows, keys] = torch.softmax(scores, dim=-1, out=scores)
        return out

    @torch.no_grad()
    def _reduce(self, layer: int, how: str) -> np.ndarray:
        """Mean or max over heads, one head at a time (never H maps at once)."""
        acc = None
        for h in range(self.n_heads):
            w = self.family.weights(layer, h).float()
            if acc is None:
                acc = w.clone()
            elif how == "mean":
                acc += w
            else:
                torch.maximum(acc, w, out=acc)
        if how == "mean":
            acc /= self.n_heads
        return acc.cpu().numpy()

    @torch.no_grad()
    def layer(self, layer: int) -> np.ndarray:
        """(H, Tq, Tk) every head of one layer: for short inputs and for figures that show all heads.

        Each head's softmax is written straight into the result (a memoised head is copied in), so that a
        layer costs its H maps and nothing more: no per-head array and no stacking copy (at 4,096 tokens
        the stack of 8 maps was a third of the time)."""
        self._check(layer, 0)
        out = torch.empty((self.n_heads, *self.shape), dtype=torch.float32)
        for h in range(self.n_heads):
            with self._lock:
                kept = self._memo.get((layer, h))
            if kept is not None:
                out[h] = torch.from_numpy(kept.copy())
            elif self._read_as_weights:
                out[h] = self.family.weights(layer, h).float().cpu()
            else:
                torch.softmax(self.family.scores(layer, h).float(), dim=-1, out=out[h])
        return out.numpy()

    @torch.no_grad()
    def summary(self, thumbnail: int = 32) -> dict:
        """Per-head statistics {name: (L, H)} and pooled thumbnails (L, H, s, s), in one pass over heads.

        Computed once per input (the first call pays it; later calls, from any session, read it).
        """
        with self._lock:
            if self._summary is not None and self._summary["thumbnail"] == thumbnail:
                return self._summary
        stats = {name: np.zeros((self.n_layers, self.n_heads)) for name in STATISTICS}
        thumbs = None
        chunk = max(1, CHUNK_CELLS // (self.shape[0] * self.shape[1]))  # heads at once
        for layer in range(self.n_layers):
            for h0 in range(0, self.n_heads, chunk):
                heads = slice(h0, min(h0 + chunk, self.n_heads))
                w = self.family.weights(layer, heads)  # (h, Tq, Tk)
                for name, values in head_statistics(w).items():
                    stats[name][layer, heads] = values.cpu().numpy()
                pooled = pool_mean(w, thumbnail).cpu().numpy()
                if thumbs is None:
                    thumbs = np.zeros((self.n_layers, self.n_heads, *pooled.shape[1:]), dtype=np.float32)
                thumbs[layer, heads] = pooled
        summary = {"statistics": stats, "thumbnails": thumbs, "thumbnail": thumbnail}
        with self._lock:
            self._summary = summary
        return summary
