"""Peak memory of one batch of teacher-forced scoring at paper-size shapes: the LM head at every position, as
``model(...).logits`` computes it (and as the evaluation did before), against the LM head at the scored
positions only (eval/decode.py ``continuation_logliks``, ``answer_token_stats``).

What differs between the two is the [batch x positions x vocabulary] logits, their float32 copy and their
log-softmax; the body's activations are the same. So the model here is the tiny LLaVA's classes with a tiny body
and the real vocabulary (LLaVA-1.5 and Idefics2: 32,064 and 32,003; Qwen2.5-VL: 151,936), and the items are
token sequences of a LLaVA-1.5 QA pair's length (576 image positions + question = ~700 tokens) with a few
answer tokens, batch 16 (config.yaml's eval.batch_size). Text-only ids stand for the image positions: the head
does not see the difference. float32 weights: a bf16 model's logits are half the size before the upcast.

Each variant runs in its own process, and its figure is the process's peak resident memory minus its resident
memory once the model and the batch are built. Prints JSON, merges it into results/bench.json
("eval_scoring_peak_mb": {vocabulary: {variant: MB}}, raw figures under "eval_memory"), and prints the headline
as its last line.

    python bench/eval_memory.py [--vocab 32064 151936] [--batch 16] [--tokens 700] [--answer 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TINY = dict(vocab_size=300, image_size=16, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
            hidden=64, intermediate=128, layers=1, heads=2, max_positions=4096)


def peak_mb(vocab: int, batch: int, tokens: int, answer: int, variant: str) -> dict:
    """In this process: build the model and the batch, score it once, report the memory that scoring added."""
    import torch

    from mmunlearn.eval.decode import continuation_logliks
    from mmunlearn.models.registry import Encoded, VisionLanguageModel
    from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer

    torch.set_num_threads(2)
    tok = train_tokenizer(["USER: <image>\nWhat is the job of this person?\nASSISTANT: baker pilot nurse"] * 20,
                          TINY["vocab_size"])
    model, processor = build_tiny_llava(tok, TINY, seed=0)
    model.resize_token_embeddings(vocab)
    vlm = VisionLanguageModel(model.eval(), processor, "llava")
    g = torch.Generator().manual_seed(0)
    items = [Encoded(torch.randint(len(tok), vocab, (tokens,), generator=g).tolist(), tokens - answer, ())
             for _ in range(batch)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        if variant == "every_position":  # the model's own logits at every position, then the scored ones
            out = vlm.collate(items, padding_side="right", labels="answer")
            target = out.pop("labels")[:, 1:]
            logp = torch.log_softmax(vlm.model(**out).logits[:, :-1].float(), -1)
            scores = (logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (target != -100)).sum(1)
        else:
            scores = torch.tensor(continuation_logliks(vlm, items, batch))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"added_mb": round((after - before) / 1024), "rss_before_mb": round(before / 1024),
            "score_sum": float(scores.sum())}


def run_variant(vocab: int, batch: int, tokens: int, answer: int, variant: str) -> dict:
    cmd = [sys.executable, __file__, "--one", variant, "--vocab", str(vocab), "--batch", str(batch), "--tokens",
           str(tokens), "--answer", str(answer)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, nargs="+", default=[32064, 151936])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=700)
    ap.add_argument("--answer", type=int, default=8)
    ap.add_argument("--one", choices=["every_position", "scored_positions"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "results/bench.json"))
    args = ap.parse_args()
    if args.one:  # a child: one variant, one vocabulary
        print(json.dumps(peak_mb(args.vocab[0], args.batch, args.tokens, args.answer, args.one)))
        sys.exit(0)
    from mmunlearn.io import write_json_atomic

    result = {"batch": args.batch, "tokens": args.tokens, "answer_tokens": args.answer, "dtype": "float32",
              "by_vocabulary": {}}
    for vocab in args.vocab:
        runs = {v: run_variant(vocab, args.batch, args.tokens, args.answer, v)
                for v in ("every_position", "scored_positions")}
        same = abs(runs["every_position"]["score_sum"] - runs["scored_positions"]["score_sum"])
        result["by_vocabulary"][str(vocab)] = {**{v: r["added_mb"] for v, r in runs.items()},
                                              "score_difference": same}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    head = {v: {k: r[k] for k in ("every_position", "scored_positions")} for v, r in result["by_vocabulary"].items()}
    write_json_atomic(out, {**previous, "eval_scoring_peak_mb": head, "eval_memory": result})
    print("teacher-forced scoring, peak MB added per batch: " + "; ".join(
        f"vocabulary {v}: every position {r['every_position']}, scored positions {r['scored_positions']}"
        for v, r in head.items()))
