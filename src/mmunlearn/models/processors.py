"""A processor made of a tokenizer and an image processor, for families whose transformers processor class needs
more than the pipeline installs (Qwen2.5-VL's also builds a video processor, which requires torchvision). The
pipeline tokenises prompts and processes images itself (registry.VisionLanguageModel), so these two parts are
all it uses; they are saved and loaded with their own transformers classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ImageTextProcessor:
    tokenizer: object
    image_processor: object

    def save_pretrained(self, folder: str | Path) -> None:
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)


def qwen2_vl_image_processor(source: str | Path | None = None, revision: str | None = None, **options):
    """Qwen2-VL's image processor (PIL backend: no torchvision), from a hub id or folder, or built from
    ``options`` (patch_size, merge_size, min_pixels, max_pixels, ...). ``min_pixels`` / ``max_pixels`` given
    here override the stored ones: they set how many image tokens an image becomes."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    options = {k: v for k, v in options.items() if v is not None}
    if source is None:
        return Qwen2VLImageProcessorPil(**options)
    return Qwen2VLImageProcessorPil.from_pretrained(source, revision=revision, **options)


def qwen2_5_vl_processor(source: str | Path, revision: str | None = None, **options) -> ImageTextProcessor:
    """Qwen2.5-VL's tokenizer and image processor from a hub id or folder (``options``: pixel bounds)."""
    from transformers import AutoTokenizer

    return ImageTextProcessor(AutoTokenizer.from_pretrained(source, revision=revision),
                              qwen2_vl_image_processor(source, revision, **options))
