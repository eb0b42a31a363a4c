"""Train the embedded long-context decoder: a small Llama (RoPE, GQA) on CPython's standard-library source.

    python -m scripts.train_llama            # writes weights/llama-stdlib/{config.json,model.safetensors,
                                             #   tokenizer.json}; resumes from weights/llama-stdlib.resume.pt
    python -m scripts.train_llama --measure  # the held-out loss and every head's scores (the README's)

The text is every .py file of the standard library of the Python running this script (sorted paths, tests
and idlelib left out); one file in 20 is held out. A byte-level BPE of 2,048 ids is trained on the
training files with `tokenizers`. The model (the llama-stdlib preset) has 3 layers of 4 query heads
sharing 2 K/V heads, d = 128, RoPE θ = 1e5, context 4,096, and its output head is the embedding matrix
(tied). Training runs in phases of growing context (most steps at 256 tokens, where a step is cheap; the
last at 4,096, so that every position the pages show was trained); every window starts with <s>. From
step TILED_FROM on, P_TILED of the windows are one block of random ids repeated to fill the window (the
pattern models.long_heads probes), the block's period log-uniform from 16 to half the window and its ids
drawn from an alphabet of 32 ids up to the whole vocabulary; the first copy's targets are ignored, every
later one is predictable only by a head that finds the previous copy. P_COPY of the windows are text with
a span (random ids or its own text) written again up to half a window later. The rest is plain text.

What it takes (README "Our trained models"): with an untied output head (copying a random id then needs
the output row of each of 2,048 ids learned on its own), no induction head had formed at 256 tokens after
2,000 steps with tiled windows from step 0, nor 460 steps into the tiled windows after a text-only start.
With the output head tied to the embeddings and the same text-only start (a previous-token head forms
there), the tiled windows' copy was learned and an induction head scored 0.96 on the 256-token probe 460
steps later.
Fixed seed; a rerun gives the same weights. A checkpoint is written every few minutes and a rerun of the
same command continues from it. The output is a Hugging Face Llama directory (models.llama_io), which
transformers can load too.
"""

import argparse
import hashlib
import math
import os
import platform
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from models.device import default_device
from models.head_scores import induction_score
from models.llama import PRESETS, Llama, LlamaConfig, build_llama
from models.llama_io import save_llama
from models.long_heads import llama_maps, long_head_scores, repeated_block
from scripts.train_gpt import SKIPPED_DIRS, lr_at, progress

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "weights" / "llama-stdlib"
SPECIALS = ["<s>"]  # id 0: the start of every window and of every input (the tokenizer adds it)
# (context, batch, steps): most steps short, the last phase at the full context
PHASES = ((256, 16, 2000), (1024, 4, 250), (4096, 1, 200))
P_TILED = 0.6  # share of windows that are one random block repeated to fill the window (the probe's pattern)
P_COPY = 0.3  # share of windows of text with a span (random ids or its own text) written again later
TILED_FROM = 1000  # tiled windows start at this step: a previous-token head forms on text first
IGNORE = -100  # target of a position whose next token nothing can predict (the first copy of a random block)
MEASURE_LENGTH = 4096  # the README's numbers are measured at this many tokens
LONG_GAP = 1000  # the induction probe repeats its random block at least this many tokens later


def stdlib_sources(root: Path | None = None) -> list[tuple[str, str]]:
    """(relative path, text) of every .py file of the standard library, in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if SKIPPED_DIRS.intersection(relative.parts):
            continue
        try:
            files.append((relative.as_posix(), path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue  # a few files are deliberately not UTF-8
    return files


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE of `vocab_size` ids (every byte is one, so any text encodes) that adds <s>."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return tokenizer


def encode_files(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """1-D int32: the files' ids one after another (separated by a blank line), without <s>."""
    ids = [enc.ids for enc in tokenizer.encode_batch([t + "\n\n" for t in texts], add_special_tokens=False)]
    return torch.from_numpy(np.concatenate([np.asarray(i, dtype=np.int32) for i in ids]))


def get_batch(
    data: torch.Tensor,
    batch: int,
    t: int,
    vocab: int,
    p_copy: float,
    g: torch.Generator,
    p_tiled: float = 0.0,
):
    """(x, y) of shape (batch, t): <s> then a window of the text, y shifted by one.

    With probability p_tiled a row is instead <s> and one block of random ids repeated to fill the window
    (its period log-uniform from 16 to t/2, so on long windows the copy is up to t/2 tokens away, as in
    models.long_heads' probe); the targets of the first copy are IGNORE (nothing predicts random ids), every
    later one is predictable only by a head that finds the previous copy. Otherwise, with probability
    p_copy, a row gets a span of 16 to t/4 ids (random ids or the window's own text, even odds) written at
    two places, the second anywhere after the first (far apart on long windows); its loss counts.
    """
    starts = torch.randint(0, len(data) - t, (batch,), generator=g)
    rows = torch.zeros(batch, t + 1, dtype=torch.long)  # column 0 stays <s> (id 0)
    ignored = torch.zeros(batch, t, dtype=torch.bool)
    for r, (row, start) in enumerate(zip(rows, starts.tolist())):
        row[1:] = data[start : start + t]
        u = float(torch.rand((), generator=g))
        if t >= 32 and u < p_tiled:
            log_period = math.log(16) + float(torch.rand((), generator=g)) * math.log(t / 32)
            period = min(t // 2, int(math.exp(log_period)))
            # drawn from an alphabet of 32 ids up to the whole vocabulary (log-uniform): the copy is found
            # first where few ids recur, and then has to work for any id, as on the probe
            size = int(math.exp(math.log(32) + float(torch.rand((), generator=g)) * math.log(vocab / 32)))
            alphabet = torch.randperm(vocab - len(SPECIALS), generator=g)[:size] + len(SPECIALS)
            block = alphabet[torch.randint(0, len(alphabet), (period,), generator=g)]
            row[1:] = block.repeat(t // period + 1)[:t]
            ignored[r, : period + 1] = True  # the first copy, and its successor's first id
            continue
        if t < 64 or u >= p_tiled + p_copy:
            continue
        n = int(torch.randint(16, t // 4 + 1, (), generator=g))
        first = int(torch.randint(1, t // 2 - n + 1, (), generator=g))
        second = int(torch.randint(first + n, t + 1 - n, (), generator=g))
        if torch.rand((), generator=g) < 0.5:
            block = torch.randint(len(SPECIALS), vocab, (n,), generator=g)
            row[first : first + n] = block
        row[second : second + n] = row[first : first + n].clone()
    y = rows[:, 1:].clone()
    y[ignored] = IGNORE
    return rows[:, :-1], y


def schedule(phases) -> list[tuple[int, int]]:
    """(context, batch) of every step, phase after phase."""
    return [(t, b) for t, b, steps in phases for _ in range(steps)]


def save_checkpoint(
    path: Path,
    model,
    optimizer,
    g: torch.Generator,
    step: int,
    losses: list[float],
    clock: dict | None = None,
) -> None:
    tmp = path.with_suffix(".tmp")
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": g.get_state()}
    state |= {"step": step, "losses": losses, "torch_rng": torch.get_rng_state(), "clock": clock or {}}
    torch.save(state, tmp)
    tmp.replace(path)  # a run killed while writing keeps the previous checkpoint


def train(
    config: LlamaConfig,
    data: torch.Tensor,
    phases,
    lr: float,
    device: str,
    p_copy: float = 0.5,
    p_tiled: float = 0.0,
    tiled_from: int = 0,
    seed: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: float = 300.0,
    stop_after: int | None = None,
    show_progress: bool = True,
    clock: dict | None = None,
) -> tuple[Llama, list[float]]:
    """Train from scratch, or continue from `checkpoint` when it exists; returns the model (eval mode)
    and the loss of every step. `stop_after` ends the run after that many steps in total (leaving the
    checkpoint to resume from), as an interrupted run would. `clock`, when given, receives the training's
    process CPU seconds and wall seconds ("cpu_s", "wall_s"), summed over every resumed part."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_llama(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    steps = schedule(phases)
    start, losses, spent = 0, [], {"cpu_s": 0.0, "wall_s": 0.0}
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        g.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, losses = state["step"], list(state["losses"])
        spent = dict(state.get("clock", spent))
        if show_progress:
            print(f"resuming at step {start} of {len(steps)} from {checkpoint}", file=sys.stderr)
    end = len(steps) if stop_after is None else min(len(steps), stop_after)
    started = last_saved = time.time()
    cpu_started = time.process_time()

    def clocked() -> dict:
        return {
            "cpu_s": spent["cpu_s"] + time.process_time() - cpu_started,
            "wall_s": spent["wall_s"] + time.time() - started,
        }

    model.train()
    for step in range(start, end):
        t, batch = steps[step]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, len(steps), lr)
        tiled = p_tiled if step >= tiled_from else 0.0
        x, y = get_batch(data, batch, t, config.vocab_size, p_copy, g, tiled)
        logits = model(x.to(device)).logits  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if show_progress and (step % 10 == 0 or step == end - 1):
            progress(step, len(steps), sum(losses[-10:]) / len(losses[-10:]), started)
        if checkpoint is not None and (time.time() - last_saved > checkpoint_every or step == end - 1):
            save_checkpoint(checkpoint, model, optimizer, g, step + 1, losses, clocked())
            last_saved = time.time()
    if show_progress:
        print(file=sys.stderr)
    if clock is not None:
        clock.update(clocked())
    return model.eval(), losses


@torch.no_grad()
def held_out_loss(model: Llama, data: torch.Tensor, t: int, device: str, max_windows: int = 8) -> float:
    """Mean next-token loss (nats) over non-overlapping windows of `data`, each after <s>."""
    n = min(max_windows, (len(data) - 1) // t)
    total = 0.0
    for i in range(n):
        window = data[i * t : (i + 1) * t].long()
        x = torch.cat([torch.zeros(1, dtype=torch.long), window[:-1]])[None].to(device)
        logits = model(x).logits[0]
        total += F.cross_entropy(logits, window.to(device), reduction="sum").item()
    return total / (n * t)


def measure_heads(model: Llama, val_data: torch.Tensor, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per head (L, H) at MEASURE_LENGTH tokens (models.long_heads): the sink share and previous-token
    score on held-out text, the induction score on a random block repeated >= LONG_GAP tokens later."""
    text = [0, *val_data[: MEASURE_LENGTH - 1].tolist()]
    probe, period = repeated_block(MEASURE_LENGTH, len(SPECIALS), vocab, bos=0, seed=seed)
    if period < LONG_GAP:
        raise ValueError(f"the probe repeats its block {period} tokens later, under {LONG_GAP}")
    return long_head_scores(llama_maps(model, text), llama_maps(model, probe.tolist()), period)


def uniform_scores(length: int = MEASURE_LENGTH) -> dict[str, float]:
    """The scores of a head that spreads its attention evenly over every key it may see (query i over i + 1
    keys) at `length` tokens, as long_head_scores reads them: the chance level of each score."""
    keys = np.arange(1, length + 1, dtype=np.float64)  # query i sees i + 1 keys
    period = length // 2
    # the induction score reads the probe's map after <s>: query i + 1 of the map, from i = period on
    return {
        "sink": float((1 / keys).mean()),
        "previous_token": float((1 / keys[1:]).mean()),
        "induction": float((1 / keys[period + 1 : length]).mean()),
    }


def head_report(scores: dict[str, np.ndarray], top: int = 3) -> str:
    """A plain-text table per score: the best `top` heads (layer.head), the median over heads and the
    uniform-attention level, then every head's score with layers as rows."""
    chance = uniform_scores()
    lines = []
    for name, values in scores.items():
        order = np.argsort(values, axis=None)[::-1][:top]
        best = ", ".join(
            f"L{i // values.shape[1]}.H{i % values.shape[1]} {values.flat[i]:.3f}" for i in order
        )
        lines.append(
            f"{name}: best {best}; median {np.median(values):.4f}; uniform attention {chance[name]:.4f}"
        )
        lines.extend(
            f"  layer {layer}: " + " ".join(f"{v:.3f}" for v in row) for layer, row in enumerate(values)
        )
    return "\n".join(lines)


def held_out_split(files: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts): one file in 20 is held out."""
    return [t for i, (_, t) in enumerate(files) if i % 20], [
        t for i, (_, t) in enumerate(files) if i % 20 == 0
    ]


@torch.no_grad()
def measure(directory: Path, seed: int = 0) -> None:
    """Print the held-out loss and the head scores of a trained directory (the README's numbers)."""
    from models.llama_io import load_llama

    loaded = load_llama(directory)
    _, val_texts = held_out_split(stdlib_sources())
    val_data = encode_files(loaded.tokenizer, val_texts)
    chars_per_token = sum(map(len, val_texts)) / len(val_data)
    val_loss = held_out_loss(loaded.model, val_data, MEASURE_LENGTH, "cpu")
    print(
        f"held-out loss {val_loss:.3f} nats/token, {val_loss / math.log(2) / chars_per_token:.3f} bits/char "
        f"({len(val_data)} held-out tokens, {chars_per_token:.2f} characters a token; "
        f"8 windows of {MEASURE_LENGTH})"
    )
    scores = measure_heads(loaded.model, val_data, loaded.config.vocab_size, seed=seed)
    print(
        f"per head at {MEASURE_LENGTH} tokens (induction: random block repeated {MEASURE_LENGTH // 2} later)"
    )
    print(head_report(scores))
    layer, head = divmod(int(scores["induction"].argmax()), loaded.config.n_head)
    print(f"induction of L{layer}.H{head} by length (random block repeated half the length later):")
    for length in (256, 1024, 2048, MEASURE_LENGTH):
        probe, period = repeated_block(length, len(SPECIALS), loaded.config.vocab_size, bos=0, seed=seed)
        w = llama_maps(loaded.model, probe.tolist()).head(layer, head)
        score = float(induction_score(torch.from_numpy(w.copy())[1:, 1:], period))
        level = uniform_scores(length)["induction"]
        print(f"  {length} tokens, repeated {period} later: {score:.3f} (uniform attention {level:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="llama-stdlib", choices=sorted(PRESETS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every phase's steps (a quick try)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the default leaves cores free)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--p-tiled", type=float, default=P_TILED, help="share of tiled random windows")
    parser.add_argument("--p-copy", type=float, default=P_COPY, help="share of windows with a copied span")
    parser.add_argument("--tiled-from", type=int, default=TILED_FROM, help="the step tiled windows start at")
    parser.add_argument("--measure", action="store_true", help="only measure the model in --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure:
        measure(args.out, seed=args.seed)
        return
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))  # the tokenizer trainer's threads
    device = args.device or default_device()
    config = PRESETS[args.preset]
    phases = [(t, b, max(1, round(s * args.scale))) for t, b, s in PHASES]
    checkpoint = args.out.with_name(args.out.name + ".resume.pt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)

    started = time.time()
    files = stdlib_sources()
    train_texts, val_texts = held_out_split(files)
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    train_data, val_data = encode_files(tokenizer, train_texts), encode_files(tokenizer, val_texts)
    digest = hashlib.sha256("\x00".join(p + t for p, t in files).encode()).hexdigest()[:16]
    chars_per_token = sum(map(len, val_texts)) / len(val_data)
    print(
        f"{len(files)} files: {len(train_data)} training and {len(val_data)} held-out tokens "
        f"({chars_per_token:.2f} characters a token)",
        file=sys.stderr,
    )
    clock: dict = {}
    model, losses = train(
        config,
        train_data,
        phases,
        args.lr,
        device,
        p_copy=args.p_copy,
        p_tiled=args.p_tiled,
        tiled_from=args.tiled_from,
        seed=args.seed,
        checkpoint=checkpoint,
        clock=clock,
    )
    model.cpu()
    val_loss = held_out_loss(model, val_data, MEASURE_LENGTH, "cpu")
    scores = measure_heads(model, val_data, config.vocab_size, seed=args.seed)
    minutes = (time.time() - started) / 60
    print(head_report(scores), file=sys.stderr)
    print(f"held-out loss {val_loss:.3f} nats/token at {MEASURE_LENGTH}; {minutes:.1f} min", file=sys.stderr)

    def best(name: str) -> dict:
        layer, head = divmod(int(scores[name].argmax()), config.n_head)
        return {"layer": layer, "head": head, "score": round(float(scores[name].max()), 4)}

    training = {
        "command": " ".join(["python -m scripts.train_llama", *sys.argv[1:]]),
        "phases": [{"context": t, "batch": b, "steps": s} for t, b, s in phases],
        "lr": args.lr,
        "seed": args.seed,
        "final_train_loss": round(sum(losses[-20:]) / 20, 4),
        "val_loss_nats_per_token": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2) / chars_per_token, 4),
        "measured_at": MEASURE_LENGTH,
        "mean_sink_share": round(float(scores["sink"].mean()), 4),
        "best_sink_head": best("sink"),
        "best_previous_token_head": best("previous_token"),
        "best_induction_head": best("induction"),
        "induction_distance": MEASURE_LENGTH // 2,
        "minutes": round(minutes, 1),
        "training_wall_minutes": round(clock["wall_s"] / 60, 1),
        "training_cpu_minutes": round(clock["cpu_s"] / 60, 1),
        "p_tiled": args.p_tiled,
        "p_copy": args.p_copy,
        "tiled_from": args.tiled_from,
        "hardware": f"{device}, {args.threads} thread(s), {platform.processor() or platform.machine()}",
        "corpus": f"{len(files)} files of the Python {platform.python_version()} stdlib, sha256 {digest}",
    }
    save_llama(model, config, args.out, tokenizer, extra={"name": "llama-stdlib", "training": training})
    checkpoint.unlink(missing_ok=True)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
