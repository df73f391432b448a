"""A tiny, randomly initialised LLaVA built from config: the offline stand-in for LLaVA-1.5-7B.

Same architecture classes as the real model (CLIP vision tower + projector + Llama), a byte-level BPE
tokenizer trained on the dataset's own text, and a CLIP image processor at the demo's image size, so every
code path past loading is the one a GPU user runs.
"""

from __future__ import annotations

from typing import Iterable

import torch

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<image>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token=None, extra_special_tokens={"image_token": "<image>"},
                                   padding_side="right")


def build_tiny_llava(tokenizer, cfg: dict, seed: int):
    """(model, processor) from the ``tiny`` block of a model's config entry."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor  # no torchvision on CPU installs
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    size, patch = cfg["image_size"], cfg["patch_size"]
    vision = CLIPVisionConfig(image_size=size, patch_size=patch, hidden_size=cfg["vision_hidden"],
                              intermediate_size=cfg["vision_hidden"] * 4, num_hidden_layers=cfg["vision_layers"],
                              num_attention_heads=cfg["vision_heads"])
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg["hidden"], intermediate_size=cfg["intermediate"],
                       num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                       num_key_value_heads=cfg["heads"], max_position_embeddings=cfg["max_positions"],
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    n_image_tokens = (size // patch) ** 2  # "default" strategy drops CLS: (1 + patches) - 1
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=n_image_tokens, vision_feature_layer=-2,
                         vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = ImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                     do_center_crop=True, do_resize=True)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>")
    return model, processor
