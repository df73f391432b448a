"""Benchmark: training steps/s of the demo's tiny LLaVA on CPU (whole batches, and with the demo's
``length_chunks``), and stored adapter size vs a merged checkpoint,
measured for the tiny model and counted (on the meta device, no weights) for LLaVA-1.5-7B's architecture.

    python bench/train_speed.py [--steps 40] [--threads 1 2]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.safetensors"))


def llava_7b_counts(r: int = 16) -> dict:
    """Parameters of LLaVA-1.5-7B and of its LoRA (r, language model's linear layers), counted on meta."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration

    from mmunlearn.models.reference import llava_1_5_7b_config
    from mmunlearn.models.registry import family

    cfg = llava_1_5_7b_config()
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
        total = sum(p.numel() for p in model.parameters())
        peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=r, target_modules=family("llava").lora_target))
        lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    return {"params": total, "lora_params": lora, "merged_bf16_gb": round(total * 2 / 1e9, 2),
            "adapter_bf16_mb": round(lora * 2 / 1e6, 1), "ratio": round(total / lora)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from mmunlearn.data.synthetic import SyntheticSpec, generate
    from mmunlearn.data.sets import vanilla_set
    from mmunlearn.models.registry import VisionLanguageModel
    from mmunlearn.models.tiny import build_tiny_llava, train_tokenizer
    from mmunlearn.train.examples import build_mix
    from mmunlearn.train.stages import add_lora, encode_items, train_config
    from mmunlearn.train.trainer import train

    demo = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    tiny, hp = demo["models"]["tiny-llava"]["tiny"], demo["finetune"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "data", SyntheticSpec(num_fictitious=60, num_celebrities=40, forget_ratios=(30,)))
        profiles = vanilla_set(tmp / "data")
        texts = [qa.question + " " + qa.answer for p in profiles for qa in p.qa] + [p.biography for p in profiles]
        model, processor = build_tiny_llava(train_tokenizer(texts, tiny["vocab_size"]), tiny, seed=0)
        vlm = VisionLanguageModel(model, processor, "llava")
        items = build_mix(profiles, ["qa", "qa_text"], vlm.family.train_prompt, 0)
        encoded = encode_items(vlm, items, True, None)
        # the demo fine-tune's LoRA (config/demo.yaml: dropout 0)
        lora = {"r": 16, "alpha": 16, "dropout": 0.05, **hp.get("lora", {})}
        add_lora(vlm, lora, 0)
        # whole batches, then the demo's length_chunks (the same gradient with less padding)
        for chunks in sorted({1, hp.get("length_chunks", 1)}):
            for threads in args.threads:
                torch.set_num_threads(threads)
                cfg = train_config({**hp, "max_steps": args.steps, "log_every": 10 ** 6, "length_chunks": chunks}, 0)
                t0 = time.perf_counter()
                train(vlm, "nll", {"train": encoded}, cfg)
                suffix = "" if chunks == 1 else f"_{chunks}_chunks"
                out[f"tiny_steps_per_s_{threads}_threads{suffix}"] = round(args.steps / (time.perf_counter() - t0), 2)
        vlm.model.save_pretrained(tmp / "adapter")
        vlm.model.merge_and_unload().save_pretrained(tmp / "merged")
        out["tiny_batch_size"] = hp["batch_size"]
        out["tiny_adapter_kb"] = round(dir_bytes(tmp / "adapter") / 1024)
        out["tiny_merged_kb"] = round(dir_bytes(tmp / "merged") / 1024)
        out["tiny_ratio"] = round(dir_bytes(tmp / "merged") / dir_bytes(tmp / "adapter"), 1)
    out["llava_1.5_7b"] = llava_7b_counts()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
