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
from .processors import qwen2_5_vl_processor

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


@dataclass(frozen=True)
class Family:
    name: str
    load: Callable[..., torch.nn.Module]  # (source, revision, dtype, device_map) -> the model
    lora_target: str  # full-match regex over module names (PEFT semantics): language model only
    train_prompt: Callable[[str, bool], str]
    # (source, revision, **processor options) -> the processor, as the pipeline builds it for this family: models/
    # loading.py builds every loaded model's from here, and the preflight its cached-config model's
    processor: Callable[..., object]
    answer_suffix: str = ""  # closes the answer turn of a training target (Idefics2's chat template)
    expand_images: Callable[[object, str], str] | None = None  # the processor's <image> expansion (None: n x <image>)
    per_example_images: bool = False  # pixel_values (B, max images, C, H, W) + pixel_attention_mask (Idefics2)
    build_tiny: Callable | None = None  # (tokenizer, tiny cfg, seed) -> (model, processor), randomly initialised
    # Families whose image token count depends on the image (Qwen2.5-VL): (processor, text, counts) -> text with
    # each <image> expanded to its own count; the images' patches go to the model flat, with their grids
    sized_images: Callable[[object, str, list[int]], str] | None = None
    # Whether a KV cache computed for a prompt's first tokens can be continued with the rest (few-shot prefix
    # reuse, answer options scored on their question's cache); None, or the reason it cannot
    no_cache_reuse: str | None = None
    # The family's chat template around an evaluation prompt written in the paper's wording (None: as is)
    chat: Callable[[str], str] | None = None


FAMILIES: dict[str, Family] = {}


def register_family(name: str, lora_target: str, train_prompt: Callable[[str, bool], str],
                    processor: Callable[..., object], **options):
    def wrap(load):
        FAMILIES[name] = Family(name, load, lora_target, train_prompt, processor, **options)
        return load
    return wrap


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family '{name}'; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


# LLaVA in transformers 5: model.vision_tower, model.multi_modal_projector, model.language_model, lm_head.
# The original's suffix list also hit the CLIP vision tower's q/k/v_proj (spec §3); this regex cannot.
LLAVA_LORA_TARGET = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
QWEN2_5_VL_LORA_TARGET = LLAVA_LORA_TARGET  # the same module names: model.language_model.layers.N...
IDEFICS2_LORA_TARGET = r"model\.text_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def llava_processor(source: str, revision: str | None = None, **options):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(source, revision=revision, **options)


@register_family("llava", LLAVA_LORA_TARGET, prompts.qa_prompt, build_tiny=tiny.build_tiny_llava,
                 processor=llava_processor)
def load_llava(source: str, revision: str | None, dtype: torch.dtype, device_map=None):
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(source, revision=revision, dtype=dtype,
                                                         device_map=device_map, attn_implementation="sdpa")


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


def idefics2_processor(source: str, revision: str | None = None, **options):
    """Without image splitting (spec §3: the original turns it off)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(source, revision=revision, do_image_splitting=False, **options)


@register_family("idefics2", IDEFICS2_LORA_TARGET, idefics2_train_prompt, answer_suffix="<end_of_utterance>",
                 expand_images=idefics2_expand_images, per_example_images=True,
                 build_tiny=tiny.build_tiny_idefics2, processor=idefics2_processor)
def load_idefics2(source: str, revision: str | None, dtype: torch.dtype, device_map=None):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(source, revision=revision, dtype=dtype,
                                                       device_map=device_map, attn_implementation="sdpa")


QWEN_SYSTEM = "You are a helpful assistant."  # the default system turn of Qwen2.5-VL's chat template


def qwen_turns(user: str) -> str:
    """Qwen2.5-VL's chat template (ChatML) up to the assistant's answer: system turn, one user turn."""
    return (f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def qwen_train_prompt(question: str, with_image: bool) -> str:
    """The template as Qwen's processor renders ``[user: [image, question]]``: the image first, then the question;
    the answer follows, then ``answer_suffix``."""
    return qwen_turns(f"{prompts.IMAGE_TOKEN}{question}" if with_image else question)


def qwen_chat(prompt: str) -> str:
    """An evaluation prompt in the paper's wording (``USER: ...\nASSISTANT:``, few-shot demonstrations
    included) as the user turn of Qwen's template: the closing ``ASSISTANT:`` becomes the template's assistant
    turn, the rest stays word for word."""
    body = prompt.rstrip()
    body = body[: -len("ASSISTANT:")] if body.endswith("ASSISTANT:") else body
    return qwen_turns(body.rstrip("\n"))


def qwen_expand_images(processor, text: str, counts: list[int]) -> str:
    """What Qwen's processor does to an image in a prompt: ``<|vision_start|>``, one ``<|image_pad|>`` per
    merged patch of that image, ``<|vision_end|>``."""
    parts = text.split(prompts.IMAGE_TOKEN)
    if len(parts) - 1 != len(counts):
        raise ValueError(f"prompt has {len(parts) - 1} image placeholders but {len(counts)} images")
    pad = processor.tokenizer.image_token
    out = parts[0]
    for n, part in zip(counts, parts[1:]):
        out += f"<|vision_start|>{pad * n}<|vision_end|>{part}"
    return out


@register_family("qwen2_5_vl", QWEN2_5_VL_LORA_TARGET, qwen_train_prompt, answer_suffix="<|im_end|>",
                 sized_images=qwen_expand_images, chat=qwen_chat, build_tiny=tiny.build_tiny_qwen2_5_vl,
                 processor=qwen2_5_vl_processor,
                 no_cache_reuse="multimodal rotary positions: a token's position ids come from the images before "
                                "it (their grids), computed over the whole sequence, so a cached prefix cannot be "
                                "continued with plain position offsets")
def load_qwen2_5_vl(source: str, revision: str | None, dtype: torch.dtype, device_map=None):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(source, revision=revision, dtype=dtype,
                                                              device_map=device_map, attn_implementation="sdpa")


def common_prefix(a: list[int], b: list[int], limit: int | None = None) -> int:
    """How many tokens ``a`` and ``b`` start with alike, at most ``limit``."""
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


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

    @property
    def image_policy(self) -> dict | None:
        """How images become tokens, where the family sizes them (recorded in run.json and every evaluation's
        provenance: it changes the token count, and so the results): the image processor's pixel bounds."""
        if self.family.sized_images is None:
            return None
        ip = self.processor.image_processor
        size = dict(getattr(ip, "size", None) or {})
        return {"min_pixels": size.get("shortest_edge"), "max_pixels": size.get("longest_edge"),
                "patch_size": ip.patch_size, "merge_size": ip.merge_size}

    def image_token_count(self, data: bytes) -> int:
        """Tokens this image occupies in a prompt: fixed per family, or (``sized_images``) its merged patches."""
        if self.family.sized_images is None:
            return self.image_tokens
        grid = self._pixels_of(data)[1]
        return int(grid.prod()) // self.processor.image_processor.merge_size ** 2

    def expanded(self, text: str, images: tuple[bytes, ...]) -> str:
        """The text the tokenizer sees: each ``<image>`` placeholder expanded to its image's tokens, in order
        (``images`` is needed only by families whose image token count depends on the image)."""
        if self.family.sized_images is not None:
            counts = [self.image_token_count(img) for img in images[:text.count(prompts.IMAGE_TOKEN)]]
            return self.family.sized_images(self.processor, text, counts)
        if self.family.expand_images is not None:
            return self.family.expand_images(self.processor, text)
        return text.replace(prompts.IMAGE_TOKEN, prompts.IMAGE_TOKEN * self.image_tokens)

    def tokenize(self, text: str, images: tuple[bytes, ...] = ()) -> list[int]:
        """Token ids of a prompt whose ``<image>`` placeholders stand for ``images``, in order."""
        return self.tokenize_all([text], [images])[0]

    def tokenize_all(self, texts: list[str], images: list[tuple[bytes, ...]]) -> list[list[int]]:
        """``tokenize`` of many texts in one tokenizer call, each distinct text once (a question's answer options
        share its prompt): per-call overhead was about half of an evaluation's tokenisation time."""
        expanded = [self.expanded(t, imgs) for t, imgs in zip(texts, images)]
        distinct = list(dict.fromkeys(expanded))
        ids = dict(zip(distinct, self.tokenizer(distinct)["input_ids"])) if distinct else {}
        return [list(ids[e]) for e in expanded]

    def render(self, prompt: str) -> str:
        """An evaluation prompt in the paper's wording, in the family's chat template if it has one."""
        return self.family.chat(prompt) if self.family.chat is not None else prompt

    def encode(self, prompt: str, continuation: str = "", images: tuple[bytes, ...] = (),
               append_eos: bool = False) -> Encoded:
        """Tokenise ``prompt + continuation``; tokens past the prompt are the ones scored or trained on."""
        return self.encode_all([prompt], [continuation], [images], append_eos)[0]

    def encode_all(self, texts: list[str], continuations: list[str] | None = None,
                   images: list[tuple[bytes, ...]] | None = None, append_eos: bool = False) -> list[Encoded]:
        """``encode`` of many items (prompt ``texts[i]``): the tokenizer runs once over the prompts and once over
        the prompts with their continuations."""
        continuations = continuations or [""] * len(texts)
        images = images or [()] * len(texts)
        prompt_ids = self.tokenize_all(texts, images)
        whole = [k for k, c in enumerate(continuations) if c]
        fulls = dict(zip(whole, self.tokenize_all([texts[k] + continuations[k] for k in whole],
                                                  [images[k] for k in whole])))
        out = []
        for k, (ids, imgs) in enumerate(zip(prompt_ids, images)):
            if k not in fulls:
                out.append(Encoded(ids, len(ids), imgs))
                continue
            full = fulls[k]
            n = common_prefix(ids, full)  # all of the prompt for BPE tokenizers; a merge across the boundary ends it
            if append_eos and self.tokenizer.eos_token_id is not None:
                full = full + [self.tokenizer.eos_token_id]
            out.append(Encoded(full, n, imgs))
        return out

    def _pixels_of(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One image through the real image processor (cached): pixels (C, H, W) and, for families that batch
        images per example, its pixel mask (H, W); for families of sized images, its patches and their grid."""
        key = hashlib.sha1(data).hexdigest()
        if key not in self._pixels:
            image = decode_image(data)
            if self.family.sized_images is not None:  # its patches (n, C x T x P x P) and grid (t, h, w)
                out = self.processor.image_processor([image], return_tensors="pt")
                value = (out["pixel_values"], out["image_grid_thw"][0])
            elif self.family.per_example_images:
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
        wants (batch, max images, C, H, W) with all-zero padding images (which it drops) and a pixel mask;
        Qwen2.5-VL every image's patches concatenated, with each image's (t, h, w) grid."""
        if not any(e.images for e in batch):
            return {}
        if self.family.sized_images is not None:  # every image's patches in prompt order, and each image's grid
            images = [self._pixels_of(img) for e in batch for img in e.images]
            return {"pixel_values": torch.cat([pv for pv, _ in images]),
                    "image_grid_thw": torch.stack([grid for _, grid in images])}
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
