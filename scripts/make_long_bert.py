"""Write a randomly initialised BERT with a long position table, for long-input tests and benchmarks.

    python -m scripts.make_long_bert /tmp/long-bert --positions 4096

MiniLM's shape (6 layers x 12 heads, d = 384) and tokenizer, random weights (fixed seed), and as many
learned positions as asked: the embedded MiniLM stops at 512. Its maps mean nothing; their sizes are
those of a real long input. The directory loads by path like any local BERT directory.
"""

import argparse
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import save_model

from models.bert import BertModel, default_model_path, load_bert


def make_long_bert(directory: str | Path, positions: int = 4096, seed: int = 0) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    minilm = load_bert()
    config = replace(minilm.config, max_position_embeddings=positions)
    torch.manual_seed(seed)
    model = BertModel(config)
    for module in model.modules():  # BERT's initialisation: N(0, 0.02), zero biases, unit norms
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.bias)
    save_model(model, str(directory / "model.safetensors"))
    meta = {"model_type": "bert", "_name_or_path": f"random-bert-{positions}"}
    (directory / "config.json").write_text(json.dumps(asdict(config) | meta, indent=1))
    shutil.copy(default_model_path() / "tokenizer.json", directory / "tokenizer.json")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--positions", type=int, default=4096)
    args = parser.parse_args()
    path = make_long_bert(args.directory, args.positions)
    print(f"wrote {path}: {load_bert(path).config}")


if __name__ == "__main__":
    main()
