"""Trains a tiny LLaVA's LoRA for a few steps on fixed-length token sequences and saves the LoRA weights (rank 0).
Run directly (one process) or under `torchrun --nproc_per_node 2` by tests/test_parallel.py. With a fourth
argument ``full``: the whole model (the tiny base's pre-training), on items alternately with and without an image,
so that under two processes one of them never reaches the vision tower."""
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mmunlearn.data.synthetic import render_face  # noqa: E402
from mmunlearn.models.registry import Encoded, VisionLanguageModel  # noqa: E402
from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer  # noqa: E402
from mmunlearn.train.stages import _batching, add_lora  # noqa: E402
from mmunlearn.train.trainer import TrainConfig, parallel_state, train  # noqa: E402

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=2, vision_heads=2,
            hidden=32, intermediate=64, layers=2, heads=2, max_positions=256)

out, batch_size, grad_accum = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
full = sys.argv[4:] == ["full"]
torch.set_num_threads(1)
tok = train_tokenizer(["USER: ASSISTANT: a b c d e f g h"] * 20, TINY["vocab_size"])
model, processor = build_tiny_llava(tok, TINY, seed=0)
vlm = VisionLanguageModel(model.to(torch.float64), processor, "llava")
if not full:
    add_lora(vlm, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
rng = random.Random(0)
# equal lengths, equal answer lengths: a DDP average of per-process means is then the global mean
items = [Encoded([rng.randrange(10, len(tok)) for _ in range(12)], 6) for _ in range(32)]
if full:  # every other item shows an image (its tokens first): each process of two takes every other item
    image = render_face(torch.arange(12).reshape(2, 2, 3).numpy() * 20, TINY["image_size"])
    image_id, n_image = vlm.model.config.image_token_id, vlm.image_tokens
    items = [Encoded([image_id] * n_image + e.input_ids[n_image:], 6, (image,)) if i % 2 == 0 else e
             for i, e in enumerate(items)]
cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=batch_size, seed=0, grad_accum=grad_accum, log_every=1000)
history = train(vlm, "nll", {"train": items}, cfg)
world, rank = parallel_state()
if rank == 0:
    state = {n: p.detach().clone() for n, p in vlm.model.named_parameters() if p.requires_grad}
    torch.save({"lora": state, "steps": len(history), **_batching(cfg)}, out)
