"""Train the encoder-decoder on written dates -> ISO dates and ship it to weights/seq2seq-dates/.

    python -m scripts.train_seq2seq                 # the shipped weights (fixed seed, 1 CPU thread)
    python -m scripts.train_seq2seq --steps 200 --out /tmp/s2s   # a quick try

Training pairs are drawn fresh every step from the dates outside the held-out split; the held-out
dates (about 5%, `date_task.is_held_out`) are never seen in any format and give the reported
exact-match accuracy (the whole ISO string must be right).
"""

import argparse
import math
import random
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from models.date_task import (
    BOS,
    EOS,
    MAX_SRC_LEN,
    SRC_VOCAB,
    TGT_LEN,
    TGT_VOCAB,
    encode_pairs,
    iso,
    make_pairs,
    random_date,
    write_date,
)
from models.seq2seq import PRESETS, Seq2Seq, Seq2SeqConfig, build_seq2seq, greedy_generate, save_seq2seq

OUT = "weights/seq2seq-dates"


def task_config(preset: str) -> Seq2SeqConfig:
    """The preset sized for the date vocabularies."""
    return replace(
        PRESETS[preset], src_vocab_size=len(SRC_VOCAB), tgt_vocab_size=len(TGT_VOCAB), max_len=MAX_SRC_LEN,
        pad_id=TGT_VOCAB.index["<pad>"], bos_id=TGT_VOCAB.index[BOS], eos_id=TGT_VOCAB.index[EOS],
    )  # fmt: skip


def progress(step: int, total: int, loss: float, started: float) -> None:
    done = int(30 * step / total)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] step {step}/{total} loss {loss:.4f} "
                     f"{time.time() - started:.0f}s")  # fmt: skip
    sys.stderr.flush()


def exact_match(model: Seq2Seq, config: Seq2SeqConfig, pairs: list[tuple[str, str]], batch: int = 500):
    """Share of pairs whose greedily decoded output is exactly the ISO date."""
    model.eval()
    right = 0
    device = next(model.parameters()).device
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        src, _, _ = encode_pairs(chunk, device)
        ids = greedy_generate(model, src, TGT_LEN + 1, config.bos_id, config.eos_id)
        for row, (_, answer) in zip(ids.tolist(), chunk, strict=True):
            right += TGT_VOCAB.decode(row, stop_at=EOS) == answer and config.eos_id in row
    return right / len(pairs)


def train(config: Seq2SeqConfig, steps: int, batch_size: int, lr: float, seed: int, show: bool = True,
          device: str = "cpu") -> tuple[Seq2Seq, list[float]]:  # fmt: skip
    """Adam with linear warm-up then cosine decay; returns (model, per-step training loss)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = build_seq2seq(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    )
    losses, started = [], time.time()
    for step in range(1, steps + 1):
        dates = [random_date(rng, held_out=False) for _ in range(batch_size)]
        src, tgt_in, tgt_out = encode_pairs([(write_date(d, rng), iso(d)) for d in dates], device)
        logits = model(src, tgt_in).logits  # (B, 11, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if show and (step % 25 == 0 or step == steps):
            progress(step, steps, sum(losses[-25:]) / len(losses[-25:]), started)
    if show:
        sys.stderr.write("\n")
    return model.eval(), losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="dates", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", type=int, default=5000, help="held-out pairs for the reported accuracy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = task_config(args.preset)
    started, cpu_started = time.time(), time.process_time()
    model, losses = train(config, args.steps, args.batch_size, args.lr, args.seed, device=args.device)
    seconds = time.time() - started
    # CPU time of this process: the wall time it would take alone on its cores (the machine may be shared).
    cpu_seconds = time.process_time() - cpu_started
    accuracy = exact_match(model, config, make_pairs(args.held_out, seed=12345, held_out=True))
    print(
        f"trained {args.steps} steps in {seconds:.0f}s ({cpu_seconds:.0f}s of CPU); "
        f"held-out exact match {accuracy:.4%} on {args.held_out} pairs"
    )
    training = {
        "command": "python -m scripts.train_seq2seq", "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "threads": args.threads, "device": args.device,
        "seconds": round(seconds), "cpu_seconds": round(cpu_seconds),
        "final_loss": round(sum(losses[-50:]) / 50, 5), "held_out_pairs": args.held_out,
        "held_out_exact_match": accuracy,
    }  # fmt: skip
    alphabets = {"src_alphabet": SRC_VOCAB.alphabet, "tgt_alphabet": TGT_VOCAB.alphabet}
    save_seq2seq(model, config, args.out, task="dates", **alphabets, training=training)
    print(f"saved {args.out}/model.safetensors and config.json")


if __name__ == "__main__":
    main()
