"""The model registry: one entry per model family, selected by the ``family`` key of a config entry.

A config entry (``models:`` in config.yaml) names a family, where its weights come from (a hub id at a pinned
revision, or ``tiny`` = built from config by the pipeline), its dtype and LoRA target. A family knows how to
load its model and processor, which modules get LoRA (the language model's linear layers only; vision tower
and projector stay frozen) and how it formats training prompts. Adding a model of a known family is one config
entry; adding a family is one ``@register_family`` function.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

from ..data.schema import decode_image
from . import prompts, tiny

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


@dataclass(frozen=True)
class Family:
    name: str
    load: Callable[..., tuple[torch.nn.Module, object]]  # (source, revision, dtype, device_map, processor_source)
    lora_target: str  # full-match regex over module names (PEFT semantics): language model only
    train_prompt: Callable[[str, bool], str]
    answer_suffix: str = ""  # closes the answer turn of a training target (Idefics2's chat template)
    expand_images: Callable[[object, str], str] | None = None  # the processor's <image> expansion (None: n x <image>)
    per_example_images: bool = False  # pixel_values (B, max images, C, H, W) + pixel_attention_mask (Idefics2)
    build_tiny: Callable | None = None  # (tokenizer, tiny cfg, seed) -> (model, processor), randomly initialised


FAMILIES: dict[str, Family] = {}


def register_family(name: str, lora_target: str, train_prompt: Callable[[str, bool], str], **options):
    def wrap(load):
        FAMILIES[name] = Family(name, load, lora_target, train_prompt, **options)
        return load
    return wrap


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family '{name}'; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


# LLaVA in transformers 5: model.vision_tower, model.multi_modal_projector, model.language_model, lm_head.
# The original's suffix list also hit the CLIP vision tower's q/k/v_proj (spec §3); this regex cannot.
LLAVA_LORA_TARGET = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
IDEFICS2_LORA_TARGET = r"model\.text_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@register_family("llava", LLAVA_LORA_TARGET, prompts.qa_prompt, build_tiny=tiny.build_tiny_llava)
def load_llava(source: str, revision: str | None, dtype: torch.dtype, device_map=None,
               processor_source: str | None = None):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(source, revision=revision, dtype=dtype,
                                                          device_map=device_map, attn_implementation="sdpa")
    # the authors' released checkpoints hold weights only (spec §3): their processor is the base model's
    processor = AutoProcessor.from_pretrained(processor_source or source,
                                              revision=None if processor_source else revision)
    return model, processor


def idefics2_train_prompt(question: str, with_image: bool) -> str:
    """Idefics2's chat template up to the answer (spec §2.1: the original trains Idefics2 on
    ``apply_chat_template([user: [image, question], assistant: [answer]]).strip()``); the answer follows, then
    ``answer_suffix``. ``tests/test_tiny_model.py`` checks it equals the processor's own template rendering."""
    return f"User:{prompts.IMAGE_TOKEN}{question}<end_of_utterance>\nAssistant:" if with_image \
        else f"User: {question}<end_of_utterance>\nAssistant:"


def idefics2_expand_images(processor, text: str) -> str:
    """What Idefics2Processor does to a prompt's ``<image>`` (without image splitting, which the pipeline turns
    off, spec §3): fake-token-wrapped ``image_seq_len`` image tokens, adjacent fakes merged, a space after a
    closing fake token that is followed by a word."""
    fake, image = processor.fake_image_token, processor.image_token
    text = text.replace(image, f"{fake}{image * processor.image_seq_len}{fake}").replace(fake + fake, fake)
    return re.sub(rf"{re.escape(fake)}(?=[^\s<])", f"{fake} ", text)


@register_family("idefics2", IDEFICS2_LORA_TARGET, idefics2_train_prompt, answer_suffix="<end_of_utterance>",
                 expand_images=idefics2_expand_images, per_example_images=True,
                 build_tiny=tiny.build_tiny_idefics2)
def load_idefics2(source: str, revision: str | None, dtype: torch.dtype, device_map=None,
                  processor_source: str | None = None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(source, revision=revision, dtype=dtype,
                                                        device_map=device_map, attn_implementation="sdpa")
    processor = AutoProcessor.from_pretrained(processor_source or source,
                                              revision=None if processor_source else revision,
                                              do_image_splitting=False)
    return model, processor


@dataclass
class Encoded:
    """One tokenised example: ``input_ids`` with ``n_prompt`` context tokens, and the images it shows."""

    input_ids: list[int]
    n_prompt: int
    images: tuple[bytes, ...] = ()


class VisionLanguageModel:
    """A model with its processor, and the encoding every stage shares (training, log-likelihood, generation).

    Prompts are tokenised by expanding each ``<image>`` to the processor's number of image tokens and running
    the tokenizer: exactly what the processor does, without re-processing pixels for every text.
    """

    def __init__(self, model, processor, family_name: str, pixel_cache_size: int = 4096):
        self.model, self.processor, self.family = model, processor, family(family_name)
        self.tokenizer = processor.tokenizer
        self._pixels: OrderedDict[str, tuple] = OrderedDict()
        self._pixel_cache_size = pixel_cache_size
        self._image_tokens: int | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_tokens(self) -> int:
        """Tokens one image occupies in the prompt, measured once through the real processor."""
        if self._image_tokens is None:
            from PIL import Image

            size = self.processor.image_processor.crop_size if hasattr(self.processor.image_processor,
                                                                       "crop_size") else None
            side = (size or {}).get("height", 32) if isinstance(size, dict) else 32
            out = self.processor(text=[prompts.IMAGE_TOKEN], images=[Image.new("RGB", (side, side))],
                                 return_tensors="pt")
            image_id = self.tokenizer.convert_tokens_to_ids(prompts.IMAGE_TOKEN)
            self._image_tokens = int((out["input_ids"] == image_id).sum())
        return self._image_tokens

    def tokenize(self, text: str) -> list[int]:
        if self.family.expand_images is not None:
            expanded = self.family.expand_images(self.processor, text)
        else:
            expanded = text.replace(prompts.IMAGE_TOKEN, prompts.IMAGE_TOKEN * self.image_tokens)
        return self.tokenizer(expanded)["input_ids"]

    def encode(self, prompt: str, continuation: str = "", images: tuple[bytes, ...] = (),
               append_eos: bool = False) -> Encoded:
        """Tokenise ``prompt + continuation``; tokens past the prompt are the ones scored or trained on."""
        prompt_ids = self.tokenize(prompt)
        if not continuation:
            return Encoded(prompt_ids, len(prompt_ids), images)
        full = self.tokenize(prompt + continuation)
        n = 0  # the prompt's tokens are a prefix of the full text's for BPE tokenizers; guard anyway
        while n < min(len(prompt_ids), len(full)) and prompt_ids[n] == full[n]:
            n += 1
        if append_eos and self.tokenizer.eos_token_id is not None:
            full = full + [self.tokenizer.eos_token_id]
        return Encoded(full, n, images)

    def _pixels_of(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One image through the real image processor (cached): pixels (C, H, W) and, for families that batch
        images per example, its pixel mask (H, W)."""
        key = hashlib.sha1(data).hexdigest()
        if key not in self._pixels:
            image = decode_image(data)
            if self.family.per_example_images:
                out = self.processor.image_processor([[image]], return_tensors="pt")
                value = (out["pixel_values"][0][0], out["pixel_attention_mask"][0][0])
            else:
                value = (self.processor.image_processor([image], return_tensors="pt")["pixel_values"][0], None)
            self._pixels[key] = value
            if len(self._pixels) > self._pixel_cache_size:
                self._pixels.popitem(last=False)
        return self._pixels[key]

    def pixel_values(self, images: list[bytes]) -> torch.Tensor:
        return torch.stack([self._pixels_of(data)[0] for data in images])

    def image_inputs(self, batch: list["Encoded"]) -> dict:
        """The batch's image tensors in the family's layout: LLaVA stacks every image of the batch; Idefics2
        wants (batch, max images, C, H, W) with all-zero padding images (which it drops) and a pixel mask."""
        if not any(e.images for e in batch):
            return {}
        if not self.family.per_example_images:
            return {"pixel_values": self.pixel_values([img for e in batch for img in e.images])}
        most = max(len(e.images) for e in batch)
        first = self._pixels_of(next(img for e in batch for img in e.images))
        pv = torch.zeros((len(batch), most, *first[0].shape), dtype=first[0].dtype)
        mask = torch.zeros((len(batch), most, *first[1].shape), dtype=first[1].dtype)
        for i, e in enumerate(batch):
            for j, img in enumerate(e.images):
                pv[i, j], mask[i, j] = self._pixels_of(img)
        return {"pixel_values": pv, "pixel_attention_mask": mask}

    def collate(self, batch: list[Encoded], padding_side: str = "right", labels: str | None = None) -> dict:
        """Pad a batch. ``labels``: None (no labels), "answer" (-100 on padding and prompt) or "all" (-100 on
        padding only: the original's recipe, which also trains on the prompt and image tokens, spec §3)."""
        pad = self.tokenizer.pad_token_id
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        label_ids = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, e in enumerate(batch):
            n = len(e.input_ids)
            sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
            ids[i, sl] = torch.tensor(e.input_ids)
            mask[i, sl] = 1
            lab = torch.tensor(e.input_ids)
            if labels == "answer":
                lab[: e.n_prompt] = -100
            label_ids[i, sl] = lab
        out = {"input_ids": ids, "attention_mask": mask}
        for key, value in self.image_inputs(batch).items():
            out[key] = value.to(dtype=self.model.dtype) if key == "pixel_values" else value
        if labels is not None:
            out["labels"] = label_ids
        return {k: v.to(self.device) for k, v in out.items()}
