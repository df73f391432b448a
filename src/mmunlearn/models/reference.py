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


QWEN2_5_VL_7B_CONTEXT = 128000


def qwen2_5_vl_7b_config(vocab_size: int = 152064, image_token_id: int = 151655, video_token_id: int = 151656,
                         vision_start_token_id: int = 151652, vision_end_token_id: int = 151653):
    """Qwen/Qwen2.5-VL-7B-Instruct's architecture (its config.json): a 32-block vision transformer (window
    attention, full attention in blocks 7/15/23/31) with a 2x2 patch merger into a 28-layer Qwen2 language model
    with grouped-query attention (4 key/value heads) and multimodal rotary positions."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=3584,
                           fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
        text_config=dict(vocab_size=vocab_size, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=QWEN2_5_VL_7B_CONTEXT,
                         rms_norm_eps=1e-6, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": [16, 24, 24]}),
        image_token_id=image_token_id, video_token_id=video_token_id, vision_start_token_id=vision_start_token_id,
        vision_end_token_id=vision_end_token_id, tie_word_embeddings=False)
