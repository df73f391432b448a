"""Real model architectures without their weights (the Hub is not needed): LLaVA-1.5-7B's config and its
processor's image settings, for counting parameters, memory and prompt tokens at paper size on the meta device.
Values from llava-hf/llava-1.5-7b-hf's config.json and preprocessor_config.json."""

from __future__ import annotations

LLAVA_1_5_7B_CONTEXT = 4096


def llava_1_5_7b_config(vocab_size: int = 32064, image_token_id: int = 32000):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    return LlavaConfig(text_config=LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                               num_attention_heads=32, vocab_size=vocab_size,
                                               max_position_embeddings=LLAVA_1_5_7B_CONTEXT),
                       vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                                      num_attention_heads=16, image_size=336, patch_size=14,
                                                      projection_dim=768),
                       image_token_id=image_token_id)


def llava_1_5_processor(tokenizer):
    """LLaVA-1.5's processor settings (336 px crop, patch 14, CLS feature dropped: 576 tokens per image) around
    any tokenizer that has an ``<image>`` token."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)
