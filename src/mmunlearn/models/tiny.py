"""Tiny, randomly initialised LLaVA, Idefics2 and Qwen2.5-VL built from config: offline stand-ins for
LLaVA-1.5-7B, Idefics2-8B and Qwen2.5-VL-7B-Instruct.

Same architecture classes as the real model (CLIP vision tower + projector + Llama), a byte-level BPE
tokenizer trained on the dataset's own text, and a CLIP image processor at the demo's image size, so every
code path past loading is the one a GPU user runs.
"""

from __future__ import annotations

from typing import Iterable

import torch

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<image>"]
# Idefics2's processor wraps images in a boundary token and closes chat turns with <end_of_utterance>.
# Qwen2.5-VL's chat turns and image markers (an image is <|vision_start|> <|image_pad|> x n <|vision_end|>).
QWEN_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                       "<|video_pad|>"]
FAMILY_SPECIAL_TOKENS = {"llava": [], "idefics2": ["<fake_token_around_image>", "<end_of_utterance>"],
                         "qwen2_5_vl": QWEN_SPECIAL_TOKENS}
FAMILY_TEXT = {"idefics2": ["User: Assistant:"],  # words of the family's training template
               "qwen2_5_vl": ["system\nYou are a helpful assistant.\nuser\nassistant\n"]}
FAMILY_TOKEN_ATTRIBUTES = {"llava": {"image_token": "<image>"},
                           "idefics2": {"image_token": "<image>", "image_boundary_token": "<fake_token_around_image>"},
                           "qwen2_5_vl": {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                          "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}}
# Idefics2-8b's chat template (the format its processor renders; written out here because hub files are out of
# reach offline). idefics2_train_prompt must agree with it: tests/test_tiny_model.py checks that.
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

# Qwen2-VL / Qwen2.5-VL's chat template (as published in their chat_template.json, written out because hub files
# are out of reach offline; videos and add_vision_id left out): a default system turn, an image as
# <|vision_start|><|image_pad|><|vision_end|>. registry.qwen_train_prompt must agree: tests/test_tiny_qwen.py.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def train_tokenizer(texts: Iterable[str], vocab_size: int, family: str = "llava"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + FAMILY_SPECIAL_TOKENS[family],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([*texts, *FAMILY_TEXT.get(family, [])], trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token=None, extra_special_tokens=FAMILY_TOKEN_ATTRIBUTES[family],
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


def build_tiny_idefics2(tokenizer, cfg: dict, seed: int):
    """(model, processor): Idefics2's classes (SigLIP-style vision encoder + perceiver resampler + Mistral) at
    toy size; ``resampler_latents`` image tokens per image (Idefics2-8B: 64); no image splitting."""
    from transformers import Idefics2Config, Idefics2ForConditionalGeneration, Idefics2Processor
    from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil

    size, latents = cfg["image_size"], cfg.get("resampler_latents", 4)
    config = Idefics2Config(
        vision_config=dict(hidden_size=cfg["vision_hidden"], intermediate_size=cfg["vision_hidden"] * 4,
                           num_hidden_layers=cfg["vision_layers"], num_attention_heads=cfg["vision_heads"],
                           image_size=size, patch_size=cfg["patch_size"]),
        perceiver_config=dict(hidden_size=cfg["hidden"], resampler_n_latents=latents, resampler_depth=1,
                              resampler_n_heads=2, resampler_head_dim=cfg["hidden"] // 4, num_key_value_heads=1),
        text_config=dict(model_type="mistral", vocab_size=len(tokenizer), hidden_size=cfg["hidden"],
                         intermediate_size=cfg["intermediate"], num_hidden_layers=cfg["layers"],
                         num_attention_heads=cfg["heads"], num_key_value_heads=cfg["heads"],
                         max_position_embeddings=cfg["max_positions"], pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Idefics2ForConditionalGeneration(config)
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    image_processor = Idefics2ImageProcessorPil(do_image_splitting=False,
                                                size={"longest_edge": size, "shortest_edge": size})
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=latents,
                                  chat_template=IDEFICS2_CHAT_TEMPLATE)
    return model, processor


def build_tiny_qwen2_5_vl(tokenizer, cfg: dict, seed: int):
    """(model, processor): Qwen2.5-VL's classes (a vision transformer with window attention and a 2x2 patch
    merger, multimodal rotary positions, a Qwen2 language model) at toy size. Images keep their aspect ratio: a
    ``h x w`` image becomes ``(h / patch) x (w / patch) / 4`` image tokens, within ``min_pixels`` / ``max_pixels``
    (the model config's ``processor`` block, merged into ``cfg``)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .processors import ImageTextProcessor, qwen2_vl_image_processor

    patch, heads = cfg["patch_size"], cfg["heads"]
    head_dim = cfg["hidden"] // heads
    half = head_dim // 2  # rotary frequencies, split over (time, height, width) as Qwen2.5-VL's [16, 24, 24] of 64
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in
           (("image", "<|image_pad|>"), ("video", "<|video_pad|>"), ("start", "<|vision_start|>"),
            ("end", "<|vision_end|>"))}
    config = Qwen2_5_VLConfig(
        vision_config=dict(depth=cfg["vision_layers"], hidden_size=cfg["vision_hidden"],
                           intermediate_size=cfg["vision_hidden"] * 2, num_heads=cfg["vision_heads"],
                           patch_size=patch, spatial_merge_size=2, temporal_patch_size=2, window_size=4 * patch,
                           out_hidden_size=cfg["hidden"], fullatt_block_indexes=[cfg["vision_layers"] - 1]),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=cfg["hidden"], intermediate_size=cfg["intermediate"],
                         num_hidden_layers=cfg["layers"], num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=cfg["max_positions"], pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
                         tie_word_embeddings=False),
        image_token_id=ids["image"], video_token_id=ids["video"], vision_start_token_id=ids["start"],
        vision_end_token_id=ids["end"], tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    image_processor = qwen2_vl_image_processor(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                               min_pixels=cfg.get("min_pixels") or (2 * patch) ** 2,
                                               max_pixels=cfg.get("max_pixels") or (8 * patch) ** 2)
    return model, ImageTextProcessor(tokenizer, image_processor)
