"""The training stages the workflow runs: tiny-base pre-training (demo only), LoRA fine-tuning (vanilla and
oracle) and unlearning. Each writes its output folder atomically: adapter (safetensors) + processor +
``run.json`` (provenance, resolved settings, LoRA-adapted modules) + ``loss_log.csv``."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import torch

from ..data.schema import Profile, read_benchmark_folder, read_training_folder
from ..data.sets import folder_set
from ..io import atomic_dir, provenance, sha256_tree, write_json_atomic
from ..models import prompts
from ..models.loading import load_model
from ..models.registry import VisionLanguageModel, family
from ..models.tiny import train_tokenizer
from .examples import IDK_ANSWERS, build_mix, finetune_mix, idk_items
from .losses import get_loss
from .trainer import TrainConfig, parallel_state, train

log = logging.getLogger(__name__)


def encode_items(vlm: VisionLanguageModel, items, append_eos: bool, max_length: int | None):
    """Tokenise training items once. ``max_length`` bounds the *text* tokens (image tokens excluded: 576 LLaVA
    image tokens alone exceed the paper's 384); longer items are cut at the end and counted."""
    out, cut = [], 0
    image_id = vlm.tokenizer.convert_tokens_to_ids(prompts.IMAGE_TOKEN)
    encoded = vlm.encode_all([it.prompt for it in items], [it.answer + vlm.family.answer_suffix for it in items],
                             [it.images for it in items], append_eos=append_eos)
    for enc in encoded:
        if max_length:
            n_text = sum(t != image_id for t in enc.input_ids)
            if n_text > max_length:
                enc.input_ids = enc.input_ids[: len(enc.input_ids) - (n_text - max_length)]
                cut += 1
        out.append(enc)
    if cut:
        log.warning("%d of %d training items were longer than max_length=%s text tokens and were cut",
                    cut, len(items), max_length)
    return out


# Loss hyper-parameters a method may read (schemas/config.schema.yaml documents each).
LOSS_HP = ("beta", "gamma", "retain_weight", "kl_over", "npo_level")


def _identity(path: str | Path | None) -> str | None:
    """What a checkpoint key needs to know about an input model: the content of a local run (its adapter or
    model folder) or of a local model folder (the tiny base's ``.../base/model``), else the hub id."""
    if path is None:
        return None
    p = Path(path)
    for folder in (p / "adapter", p / "model", p):
        if folder.is_dir():
            return sha256_tree(folder)
    return str(path)


def train_config(hp: dict, seed: int) -> TrainConfig:
    """The trainer's settings from a stage's config block, with the loss's own hyper-parameters (``LOSS_HP``)."""
    keys = TrainConfig.__dataclass_fields__
    return TrainConfig(seed=seed, **{k: v for k, v in hp.items() if k in keys and k not in ("seed", "hp")},
                       hp={k: v for k, v in hp.items() if k in LOSS_HP})


def _batching(cfg: TrainConfig) -> dict:
    world, _ = parallel_state()
    return {"effective_batch_size": cfg.batch_size * world * cfg.grad_accum, "num_processes": world,
            "per_process_batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum}


def _save(vlm: VisionLanguageModel, out_dir: Path, meta: dict, history: list[dict], adapter: bool) -> None:
    """Write the run folder (rank 0 only when several processes trained it). The run's checkpoints stay: the
    workflow removes them once it has accepted the run (``workflow.remove_finished_checkpoints``)."""
    import csv

    if parallel_state()[1] != 0:
        return
    with atomic_dir(out_dir) as tmp:
        (vlm.model.save_pretrained(tmp / "adapter") if adapter else vlm.model.save_pretrained(tmp / "model"))
        vlm.processor.save_pretrained(tmp / ("adapter" if adapter else "model"))
        with open(tmp / "loss_log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
            w.writeheader()
            w.writerows(history)
        write_json_atomic(tmp / "run.json", meta)


def _all_text(data_root: Path, corpus: str) -> list[str]:
    """Every string of the dataset, for training the tiny tokenizer (vocabulary only, no knowledge)."""
    texts = [prompts.LETTER_INSTRUCTION, prompts.CLOZE_INSTRUCTION, "USER: ASSISTANT: Question: Correct Answer:"]
    bench = data_root / "MLLMU-Bench"
    for folder in ("Full_Set", "Test_Set", "Retain_Set"):
        for p in read_benchmark_folder(bench / folder)[0].values():
            texts.append(p.biography)
            for qs in p.classification.values():
                texts += [q.question + " " + " ".join(q.options.values()) for q in qs]
            texts += [q.question + " " + q.ground_truth for q in p.generation + p.cloze]
    for folder in (bench / "ft_Data", data_root / corpus):
        for p in read_training_folder(folder)[0]:
            texts += [q.question + " " + q.answer for q in p.qa]
    return texts


def pretrain_tiny_base(data_root: str | Path, model_cfg: dict, hp: dict, out_dir: str | Path, seed: int,
                       config: dict, checkpoint_root: str | Path | None = None, facts: dict | None = None) -> dict:
    """Build the tiny LLaVA from config and give it "pre-trained" knowledge: a full fine-tune on the celebrity
    QA pairs (``hp["data"]``: the twin's ``Pretrain_Set``) in every format, so that the Real-celebrity set
    measures knowledge the base had before fine-tuning, as in the paper, and LoRA starts from a model with
    non-random embeddings."""
    data_root = Path(data_root)
    tiny = model_cfg["tiny"]
    corpus = hp.get("data", "Pretrain_Set")
    fam = family(model_cfg["family"])
    if fam.build_tiny is None:
        raise ValueError(f"model family '{fam.name}' has no tiny builder (models.<m>.source: tiny)")
    tokenizer = train_tokenizer(_all_text(data_root, corpus), tiny["vocab_size"], fam.name)
    # the image size policy (models.<m>.processor: min_pixels, max_pixels) where the family has one
    model, processor = fam.build_tiny(tokenizer, {**tiny, **(model_cfg.get("processor") or {})}, seed)
    vlm = VisionLanguageModel(model, processor, model_cfg["family"])
    celebrities = folder_set(data_root, corpus, facts)
    items = build_mix(celebrities, hp["formats"], vlm.family.train_prompt, seed)
    encoded = encode_items(vlm, items, hp.get("append_eos", True), hp.get("max_length"))
    cfg = train_config(hp, seed)
    history = train(vlm, "nll", {"train": encoded}, cfg, checkpoint_root=checkpoint_root,
                    identity={"stage": "pretrain_tiny_base", "tiny": tiny})
    meta = {"stage": "pretrain_tiny_base", "parameters": sum(p.numel() for p in model.parameters()),
            "train_items": len(items), **provenance(config, seed=seed, dtype="float32", **_batching(cfg))}
    _save(vlm, Path(out_dir), meta, history, adapter=False)
    return meta


def enable_gradient_checkpointing(vlm: VisionLanguageModel) -> None:
    """Recompute activations in backward (memory for time). With LoRA the frozen embeddings' outputs do not
    require grad, so checkpointed blocks would get no gradient path: ``enable_input_require_grads`` gives them
    one. Non-reentrant checkpointing, the variant PyTorch recommends."""
    vlm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    vlm.model.enable_input_require_grads()


def add_lora(vlm: VisionLanguageModel, lora: dict, seed: int) -> list[str]:
    """Wrap the model with fresh LoRA adapters on the family's language-model linear layers only."""
    from peft import LoraConfig, get_peft_model

    target = vlm.family.lora_target
    torch.manual_seed(seed)
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=target,
                        init_lora_weights=lora.get("init", "gaussian"))
    vlm.model = get_peft_model(vlm.model, config)
    adapted = sorted({n.rsplit(".lora_A", 1)[0].removeprefix("base_model.model.")
                      for n, _ in vlm.model.named_modules() if n.endswith(".lora_A")})
    leaked = [n for n in adapted if re.search(r"vision|visual|projector|merger", n)]
    if leaked:
        raise RuntimeError(f"LoRA reached frozen modules: {leaked[:3]}")
    return adapted


def finetune(data_profiles: list[Profile], model_cfg: dict, base_source: str, hp: dict, out_dir: str | Path,
             seed: int, config: dict, stage: str, replay: list[Profile] = (),
             checkpoint_root: str | Path | None = None) -> dict:
    """LoRA fine-tune (vanilla: all fictitious profiles; oracle: the retain split) with the configured mix."""
    torch.manual_seed(seed)
    vlm = load_model(model_cfg, base_source, dtype=hp.get("dtype"))
    items = finetune_mix(data_profiles, hp["mix"], vlm.family.train_prompt, seed, replay)
    encoded = encode_items(vlm, items, hp.get("append_eos", False), hp.get("max_length"))
    adapted = add_lora(vlm, hp["lora"], seed)
    if hp.get("gradient_checkpointing"):
        enable_gradient_checkpointing(vlm)
    cfg = train_config(hp, seed)
    history = train(vlm, "nll", {"train": encoded}, cfg, checkpoint_root=checkpoint_root,
                    identity={"stage": stage, "base": _identity(base_source)})
    meta = {"stage": stage, "parent_run": None, "base_source": base_source, "train_items": len(items),
            "profiles": len(data_profiles), "lora_modules": adapted,
            **provenance(config, seed=seed, dtype=hp.get("dtype") or model_cfg["dtype"],
                         device=str(vlm.device), image_policy=vlm.image_policy, **_batching(cfg))}
    _save(vlm, Path(out_dir), meta, history, adapter=True)
    return meta


def import_vanilla(spec: dict, out_dir: str | Path, config: dict, seed: int) -> dict:
    """Use an existing vanilla model instead of training one (``models.<m>.vanilla``): a full model (the
    authors' ``MLLMMU/LLaVA_Vanilla``, or a local folder) is recorded as the start of every chain through this
    run; a local LoRA adapter (trained on the configured base) is copied in as this run's adapter."""
    import shutil

    kind, where = spec.get("kind", "full"), spec["id"]
    meta = {"stage": "vanilla", "imported": spec, "parent_run": None}
    with atomic_dir(Path(out_dir)) as tmp:
        if kind == "adapter":
            if not (Path(where) / "adapter_config.json").is_file():
                raise ValueError(f"models.<m>.vanilla.id: {where} is not a local PEFT adapter folder "
                                 f"(no adapter_config.json)")
            shutil.copytree(where, tmp / "adapter")
        else:
            if spec.get("source") == "local" and not (Path(where) / "config.json").is_file():
                raise ValueError(f"models.<m>.vanilla.id: {where} is not a local model folder (no config.json)")
            meta.update(model_source=where, model_revision=spec.get("revision"))
        write_json_atomic(tmp / "run.json", {**meta, **provenance(config, seed=seed, dtype="as stored")})
    log.info("vanilla model imported from %s (%s)", where, kind)
    return meta


def unlearn_items(spec, modality: str, forget: list[Profile], retain: list[Profile], train_prompt, hp: dict,
                  seed: int) -> dict:
    """The training items of each data stream a method declares: ``modality`` "multimodal" asks image +
    question (as the original), "text" the same facts as text naming the person, with no image."""
    fmt = {"multimodal": "qa", "text": "qa_text"}[modality]
    items = {name: build_mix(profiles, [fmt], train_prompt, seed)
             for name, profiles in (("forget", forget), ("retain", retain)) if name in spec.streams}
    if "forget_idk" in spec.streams:  # the same forget questions, answered "I don't know" (paired item by item)
        items["forget_idk"] = idk_items(items["forget"], hp.get("idk_answers") or IDK_ANSWERS, seed)
    return items


def reference_models(spec, vlm: VisionLanguageModel, load_oracle) -> dict:
    """The frozen models a method's loss declares: ``vanilla`` is the model being unlearned before its new LoRA
    (a copy, not a second load), ``oracle`` is loaded by ``load_oracle()``."""
    refs = {}
    if "vanilla" in spec.refs:
        refs["vanilla"] = copy.deepcopy(vlm.model)
    if "oracle" in spec.refs:
        refs["oracle"] = load_oracle()
    for ref in refs.values():
        ref.requires_grad_(False)
    return refs


def unlearn(method: str, modality: str, forget: list[Profile], retain: list[Profile], model_cfg: dict,
            base_source: str, vanilla_dir: str | Path, oracle_dir: str | Path | None, hp: dict,
            out_dir: str | Path, seed: int, config: dict, checkpoint_root: str | Path | None = None) -> dict:
    """Unlearn ``forget`` from the vanilla model with ``method``; ``modality`` "multimodal" trains on image +
    question (as the original), "text" on the same facts as text naming the person, with no image."""
    spec = get_loss(method)
    torch.manual_seed(seed)
    vlm = load_model(model_cfg, base_source, vanilla_dir, dtype=hp.get("dtype"))
    streams = {name: encode_items(vlm, its, hp.get("append_eos", False), hp.get("max_length"))
               for name, its in unlearn_items(spec, modality, forget, retain, vlm.family.train_prompt, hp,
                                              seed).items()}
    refs = reference_models(spec, vlm, lambda: load_model(model_cfg, base_source, oracle_dir,
                                                          dtype=hp.get("dtype")).model)
    adapted = add_lora(vlm, hp["lora"], seed)
    if hp.get("gradient_checkpointing"):
        enable_gradient_checkpointing(vlm)
    cfg = train_config(hp, seed)
    history = train(vlm, method, streams, cfg, refs, checkpoint_root=checkpoint_root,
                    identity={"stage": "unlearn", "modality": modality, "base": _identity(base_source),
                              "vanilla": _identity(vanilla_dir), "oracle": _identity(oracle_dir)})
    meta = {"stage": "unlearn", "method": method, "unlearn_modality": modality, "parent_run": str(vanilla_dir),
            "reference_runs": {k: str(v) for k, v in (("vanilla", vanilla_dir), ("oracle", oracle_dir))
                               if k in spec.refs},
            "base_source": base_source, "lora_modules": adapted,
            "items": {k: len(v) for k, v in streams.items()},
            **provenance(config, seed=seed, dtype=hp.get("dtype") or model_cfg["dtype"],
                         device=str(vlm.device), image_policy=vlm.image_policy, **_batching(cfg))}
    _save(vlm, Path(out_dir), meta, history, adapter=True)
    return meta
