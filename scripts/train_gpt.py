"""Train the embedded causal model: a character-level GPT on the docstrings of CPython's standard library.

    python -m scripts.train_gpt            # writes weights/gpt-stdlib/{model.safetensors,config.json}

The text is every module, class and function docstring that `ast` finds in the standard library of the
Python running this script (files in sorted order, so the corpus is deterministic for a given Python).
One docstring in 20 is held out for validation. A quarter of the training windows are a random block of
characters repeated to fill the window, and half of the others get a random string written twice into
the text: a second copy is only predictable by finding the first one, which is what makes previous-token
and induction heads form. Fixed seed; about 10 minutes on one CPU thread.
"""

import argparse
import ast
import hashlib
import math
import platform
import sys
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from models.device import default_device
from models.gpt import GPT, PRESETS, GPTConfig, build_gpt
from models.gpt_io import ALPHABET, DEFAULT_GPT_PATH, CharTokenizer, save_gpt
from models.head_scores import measure_heads, repeated_random_tokens

SKIPPED_DIRS = {"site-packages", "test", "tests", "idlelib", "__pycache__"}
DOCSTRING_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
INDUCTION_PERIOD = 64  # length of the random block that the measurement sequences repeat


def stdlib_docstrings(root: Path | None = None) -> list[str]:
    """Every docstring of the standard library's own modules, in a deterministic order."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    docs = []
    for path in sorted(root.rglob("*.py")):
        if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few files are deliberately broken or not UTF-8 (they test the parser)
        docs.extend(
            doc
            for node in ast.walk(tree)
            if isinstance(node, DOCSTRING_NODES)
            if (doc := ast.get_docstring(node))
        )
    return docs


def split_corpus(docs: list[str], tokenizer: CharTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, validation ids) as 1-D uint8 tensors; every 20th docstring goes to validation."""
    train = "\n\n".join(d for i, d in enumerate(docs) if i % 20)
    val = "\n\n".join(d for i, d in enumerate(docs) if i % 20 == 0)
    return (torch.tensor(tokenizer.encode(text).ids, dtype=torch.uint8) for text in (train, val))


def get_batch(
    data: torch.Tensor,
    batch: int,
    t: int,
    vocab: int,
    p_repeat: float,
    g: torch.Generator,
    p_tiled: float = 0.0,
):
    """(x, y) of shape (batch, t): windows of the text, some with a random string written in twice.

    With probability p_tiled a row is instead one random block repeated to fill the window, the pattern
    on which the induction score is measured; of the other rows, a share p_repeat get the written-in string.
    """
    starts = torch.randint(0, len(data) - t - 1, (batch,), generator=g)
    windows = torch.stack([data[s : s + t + 1] for s in starts.tolist()]).long()  # (B, t + 1)
    for row in windows:
        if torch.rand((), generator=g) < p_tiled:
            n = int(torch.randint(8, t // 2 + 1, (), generator=g))  # block length, up to half the window
            row[:] = torch.randint(1, vocab, (n,), generator=g).repeat(t // n + 1)[: t + 1]
            continue
        if torch.rand((), generator=g) >= p_repeat:
            continue
        n = int(torch.randint(8, min(64, t // 4), (), generator=g))  # segment length
        gap = int(torch.randint(0, min(48, t // 4), (), generator=g))  # text between the two copies
        first = int(torch.randint(0, t + 1 - 2 * n - gap, (), generator=g))
        segment = torch.randint(1, vocab, (n,), generator=g)
        row[first : first + n] = segment
        row[first + n + gap : first + 2 * n + gap] = segment
    return windows[:, :-1], windows[:, 1:]


def lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up, then a cosine decay to a tenth of the peak."""
    warmup = min(50, steps // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def bits_per_character(model: GPT, data: torch.Tensor, t: int, device: str, batch: int = 32) -> float:
    """Mean next-character loss in bits over non-overlapping windows of `data`."""
    n = (len(data) - 1) // t
    x = data[: n * t].long().view(n, t)
    y = data[1 : n * t + 1].long().view(n, t)
    total = 0.0
    for i in range(0, n, batch):
        logits = model(x[i : i + batch].to(device)).logits
        total += F.cross_entropy(
            logits.flatten(0, 1), y[i : i + batch].to(device).flatten(), reduction="sum"
        ).item()
    return total / (n * t) / math.log(2)


def progress(step: int, steps: int, loss: float, started: float) -> None:
    done = (step + 1) / steps
    bar = "#" * int(30 * done)
    elapsed = time.time() - started
    eta = elapsed / done - elapsed
    print(
        f"\r[{bar:<30}] step {step + 1}/{steps} loss {loss:.3f} {elapsed:.0f}s eta {eta:.0f}s",
        end="",
        file=sys.stderr,
        flush=True,
    )


def train(
    config: GPTConfig,
    train_data: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    device: str,
    p_repeat: float = 0.5,
    p_tiled: float = 0.5,
    seed: int = 0,
    show_progress: bool = True,
) -> tuple[GPT, list[float]]:
    """Train from scratch; returns the model (in eval mode) and the loss of every step."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_gpt(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    probe = repeated_random_tokens(4, INDUCTION_PERIOD, 1, config.vocab_size, seed=seed + 1).to(device)
    losses, started = [], time.time()
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        x, y = get_batch(train_data, batch, config.block_size, config.vocab_size, p_repeat, g, p_tiled)
        logits = model(x.to(device)).logits  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if show_progress and (step % 10 == 0 or step == steps - 1):
            progress(step, steps, sum(losses[-10:]) / len(losses[-10:]), started)
        if show_progress and step % 100 == 99:
            scores = measure_heads(model.eval(), probe, INDUCTION_PERIOD)
            model.train()
            print(f"  best induction score {scores['induction'].max():.2f}", file=sys.stderr)
    if show_progress:
        print(file=sys.stderr)
    return model.eval(), losses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="gpt-stdlib", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the default leaves cores free)")
    parser.add_argument("--out", type=Path, default=DEFAULT_GPT_PATH)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device or default_device()
    config = PRESETS[args.preset]
    tokenizer = CharTokenizer(ALPHABET)

    started = time.time()
    docs = stdlib_docstrings()
    train_data, val_data = split_corpus(docs, tokenizer)
    digest = hashlib.sha256("\x00".join(docs).encode()).hexdigest()[:16]
    print(
        f"{len(docs)} docstrings: {len(train_data)} training and {len(val_data)} validation characters",
        file=sys.stderr,
    )

    model, losses = train(config, train_data, args.steps, args.batch, args.lr, device, seed=args.seed)
    model.cpu()
    val_bpc = bits_per_character(model, val_data, config.block_size, "cpu")
    ids = repeated_random_tokens(16, INDUCTION_PERIOD, 1, config.vocab_size, seed=args.seed)
    scores = measure_heads(model, ids, INDUCTION_PERIOD)
    best = divmod(int(scores["induction"].argmax()), config.n_head)
    minutes = (time.time() - started) / 60
    for name, values in scores.items():
        print(f"{name} score per head (rows = layers):\n{values.numpy().round(3)}", file=sys.stderr)
    print(
        f"validation {val_bpc:.3f} bits/char; best induction head L{best[0]}H{best[1]} "
        f"{scores['induction'].max():.3f}; {minutes:.1f} min on {device}",
        file=sys.stderr,
    )
    training = {
        "command": " ".join(["python -m scripts.train_gpt", *sys.argv[1:]]),
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "seed": args.seed,
        "final_train_loss": round(sum(losses[-50:]) / 50, 4),
        "val_bits_per_char": round(val_bpc, 4),
        "induction_period": INDUCTION_PERIOD,
        "best_induction_head": {
            "layer": best[0],
            "head": best[1],
            "score": round(float(scores["induction"].max()), 4),
        },
        "minutes": round(minutes, 1),
        "hardware": f"{device}, {args.threads} thread(s), {platform.processor() or platform.machine()}",
        "corpus": f"{len(docs)} docstrings of the Python {platform.python_version()} stdlib, sha256 {digest}",
    }
    save_gpt(model, config, ALPHABET, args.out, extra={"name": "gpt-stdlib", "training": training})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
