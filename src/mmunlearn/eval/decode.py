"""Batched scoring primitives: greedy generation with left padding, a stopping rule and a shared-prefix KV
cache, and option log-likelihoods. Items are sorted by length so that batches carry little padding; results
come back in the caller's order.

Shared prefix: the few-shot block of a split is the same for every item (with image demos it is most of the
prompt: 5 x 576 image tokens for LLaVA-1.5 classification). It is run through the model once; every batch
starts from a copy of its KV cache and prefills only the item's own tokens. The suffixes are left-padded
*between* prefix and suffix, so position ids (from the attention mask) and attention are those of the
unpadded prompt: the outputs are the ones of prefilling everything (tested equal, float64).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..models.registry import Encoded, VisionLanguageModel, common_prefix


class ContextLengthError(ValueError):
    """A prompt (plus its generation budget) longer than the model's context: refuse rather than decode
    garbage (the original's 2-shot LLaVA prompts overflowed 4,096 and produced "US US US", spec §8 #2)."""


@dataclass
class DecodeStats:
    """What a decode actually computed (for ``make bench``): items, prompt tokens prefilled (shared prefix
    counted once), tokens generated (padding rows of finished items included) and model calls."""

    items: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    generate_calls: int = 0


def context_length(vlm: VisionLanguageModel) -> int:
    return int(vlm.model.config.get_text_config().max_position_embeddings)


def check_context(vlm: VisionLanguageModel, items: list[Encoded], max_new_tokens: int, where: str,
                  names: list[str] | None = None) -> None:
    """Raise one clear error if any prompt + ``max_new_tokens`` exceeds the model's context."""
    limit = context_length(vlm)
    worst = max(range(len(items)), key=lambda i: len(items[i].input_ids), default=None)
    if worst is None or len(items[worst].input_ids) + max_new_tokens <= limit:
        return
    over = sum(len(e.input_ids) + max_new_tokens > limit for e in items)
    name = names[worst] if names else f"item {worst}"
    raise ContextLengthError(
        f"{where}: {over} of {len(items)} prompts exceed the model's context of {limit} tokens; the longest "
        f"({name}) has {len(items[worst].input_ids)} prompt tokens + {max_new_tokens} new tokens "
        f"({len(items[worst].images)} images). Lower eval.fewshot or "
        f"eval.max_new_tokens for this task.")


class FirstVisibleCharacter(StoppingCriteria):
    """Stop a row once it has produced a token with a non-whitespace character.

    The letter parser reads only the first visible character of the answer, so no later token can change a
    parsed answer. Vectorised: one lookup table over the vocabulary, no per-token Python.
    """

    def __init__(self, visible: torch.Tensor, prompt_width: int):
        self.visible, self.prompt_width = visible, prompt_width

    def __call__(self, input_ids, scores, **kwargs):
        new = input_ids[:, self.prompt_width:]
        return self.visible[new].any(dim=1)


def visible_tokens(vlm: VisionLanguageModel) -> torch.Tensor:
    """Boolean table over the vocabulary: does the token decode to a non-whitespace character? Built once per
    model (decoding every token id is slow for a 32k vocabulary)."""
    if getattr(vlm, "_visible_tokens", None) is None:
        tok = vlm.tokenizer
        special = set(tok.all_special_ids)
        size = max(len(tok), vlm.model.config.get_text_config().vocab_size)
        visible = torch.zeros(size, dtype=torch.bool)
        pieces = tok.batch_decode([[i] for i in range(len(tok))])
        for i, piece in enumerate(pieces):
            visible[i] = i not in special and piece.strip() != ""
        vlm._visible_tokens = visible.to(vlm.device)
    return vlm._visible_tokens


def _order(items: list[Encoded]) -> list[int]:
    return sorted(range(len(items)), key=lambda i: len(items[i].input_ids))


def shares_prefix(items: list[Encoded], prefix: Encoded) -> bool:
    """Does every item start with exactly the prefix's tokens and images? (A text prefix can tokenise
    differently inside a longer prompt.)"""
    n, k = len(prefix.input_ids), len(prefix.images)
    return all(e.input_ids[:n] == prefix.input_ids and e.images[:k] == prefix.images for e in items)


def split_prefix(items: list[Encoded], prefix: Encoded) -> list[Encoded]:
    """Each item without the shared prefix (tokens and images); items that do not all start with it exactly
    are a bug in the caller (check ``shares_prefix`` first)."""
    if not shares_prefix(items, prefix):
        raise ValueError("not every item starts with the shared prefix's tokens and images")
    n, k = len(prefix.input_ids), len(prefix.images)
    return [Encoded(e.input_ids[n:], max(e.n_prompt - n, 0), e.images[k:]) for e in items]


@torch.inference_mode()
def prefix_cache(vlm: VisionLanguageModel, prefix: Encoded):
    """The KV cache of the shared prefix (batch of one), computed once per split and task."""
    return vlm.model(**vlm.collate([prefix]), use_cache=True).cache


def decode_outputs(vlm: VisionLanguageModel, prompts: list[list[int]], new: list[list[int]],
                   decode_from: str) -> list[str]:
    """``new_tokens``: the generated tokens only. ``sequence``: the original's way (spec §2.2), the whole
    sequence from its third token (dropping BOS and the first prompt token), the parsers then read past the
    first "ASSISTANT:"."""
    if decode_from == "new_tokens":
        return vlm.tokenizer.batch_decode(new, skip_special_tokens=True)
    if decode_from == "sequence":
        return vlm.tokenizer.batch_decode([(p + n)[2:] for p, n in zip(prompts, new)], skip_special_tokens=True)
    raise ValueError(f"eval.decode_from must be new_tokens or sequence, got '{decode_from}'")


@torch.inference_mode()
def greedy_generate(vlm: VisionLanguageModel, items: list[Encoded], max_new_tokens: int, batch_size: int,
                    stop: str = "eos", prefix: Encoded | None = None, decode_from: str = "new_tokens",
                    stats: DecodeStats | None = None) -> list[str]:
    """Greedy continuations of every prompt.

    ``stop="first_visible"`` ends a row at its first visible character (classification: one letter, not 50
    tokens). ``prefix``: a token-and-image prefix every item starts with, prefilled once and reused.
    """
    return generate_and_score(vlm, items, None, max_new_tokens, batch_size, stop, prefix, decode_from, stats)[0]


def reusable_prompt(answer: Encoded, prompt: Encoded) -> int:
    """How many of ``prompt``'s first tokens ``answer`` (a teacher-forced item) can take from the prompt's KV cache:
    the tokens both start with, short of the answer's first scored token and of the prompt's last token (whose
    hidden state the cache does not keep); 0 where they show other images. The generation prompt "...ASSISTANT: "
    and its gold answer "...ASSISTANT:" + " Paris" differ in their last prompt token: all but it are reused."""
    if answer.images != prompt.images:
        return 0
    return common_prefix(answer.input_ids, prompt.input_ids, min(answer.n_prompt, len(prompt.input_ids)) - 1)


@torch.inference_mode()
def generate_and_score(vlm: VisionLanguageModel, items: list[Encoded], answers: list[Encoded | None] | None,
                       max_new_tokens: int, batch_size: int, stop: str = "eos", prefix: Encoded | None = None,
                       decode_from: str = "new_tokens",
                       stats: DecodeStats | None = None) -> tuple[list[str], list[AnswerTokens | None]]:
    """``greedy_generate``, and on the same prefill the teacher-forced ``AnswerTokens`` of ``answers[i]``, an item
    that starts as prompt ``i`` does (``reusable_prompt``; the generation prompt followed by its gold answer). Each
    batch's prompts run once for both: after decoding, the KV cache generation leaves is cut back to the prompts'
    shared tokens and the rest of the answers' tokens run on it, with the position ids the prompts' real tokens
    continue with. The statistics equal ``answer_token_stats`` of the answer run whole (tested in float64); answers
    that share no prompt (None, other images, a family that cannot continue a cache) come back None, for the
    caller to score whole."""
    answers = answers if answers is not None and vlm.family.no_cache_reuse is None else [None] * len(items)
    answers = [a if a is not None and reusable_prompt(a, p) > 0 else None for a, p in zip(answers, items)]
    tokens: list[AnswerTokens | None] = [None] * len(items)
    outputs: list[str] = [""] * len(items)
    pad = vlm.tokenizer.pad_token_id
    eos = vlm.tokenizer.eos_token_id
    suffixes = split_prefix(items, prefix) if prefix is not None else items
    cache, p_ids = None, None
    if prefix is not None:
        cache = prefix_cache(vlm, prefix)
        p_ids = torch.tensor([prefix.input_ids], device=vlm.device)
    stats = stats if stats is not None else DecodeStats()
    stats.prefilled_tokens += len(prefix.input_ids) if prefix is not None else 0
    order = _order(suffixes)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = vlm.collate([suffixes[i] for i in idx], padding_side="left")
        stats.prefilled_tokens += int(batch["attention_mask"].sum())
        if prefix is not None:
            n = len(idx)
            batch["input_ids"] = torch.cat([p_ids.expand(n, -1), batch["input_ids"]], dim=1)
            batch["attention_mask"] = torch.cat([torch.ones_like(p_ids).expand(n, -1), batch["attention_mask"]],
                                                dim=1)
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(n)
            batch["cache"] = batch_cache
        width = batch["input_ids"].shape[1]
        criteria = StoppingCriteriaList([FirstVisibleCharacter(visible_tokens(vlm), width)]) \
            if stop == "first_visible" else None
        riding = [answers[i] for i in idx]
        keep_cache = any(a is not None for a in riding)
        gen = vlm.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 stopping_criteria=criteria, pad_token_id=pad, return_dict_in_generate=keep_cache)
        if keep_cache:
            scored = _answers_on_prompt_cache(vlm, gen.cache, batch["attention_mask"], width,
                                              [items[i] for i in idx], riding)
            for i, t in zip(idx, scored):
                tokens[i] = t
            gen = gen.sequences
        new = gen[:, width:].tolist()
        # a finished row keeps emitting padding: cut each row after its own EOS (as batch size 1 would end)
        new = [row[:row.index(eos) + 1] if eos in row else row for row in new]
        texts = decode_outputs(vlm, [items[i].input_ids for i in idx], new, decode_from)
        for i, text in zip(idx, texts):
            outputs[i] = text
        stats.items += len(idx)
        stats.prompt_tokens += sum(len(items[i].input_ids) for i in idx)
        stats.generated_tokens += (gen.shape[1] - width) * len(idx)  # positions computed, finished rows too
        stats.generate_calls += 1
    return outputs, tokens


def _answers_on_prompt_cache(vlm: VisionLanguageModel, cache, prompt_mask: torch.Tensor, width: int,
                             prompts: list[Encoded], answers: list[Encoded | None]) -> list[AnswerTokens | None]:
    """``AnswerTokens`` of the answers that start as a generated batch's (left-padded) prompts do, from the KV cache
    ``generate`` left. Every row's prompt ends in the cache's last columns, so the cache is cut back by the same
    ``drop`` columns for all rows: the most any answer cannot reuse (``reusable_prompt``; at least the prompt's
    last token, whose hidden state predicts the answer's first token). Each answer's tokens from there run on it."""
    drop = max(len(prompts[r].input_ids) - reusable_prompt(a, prompts[r]) for r, a in enumerate(answers)
               if a is not None)
    # a prompt the cut would take whole is scored whole, by the caller
    answers = [a if a is not None and len(prompts[r].input_ids) > drop else None for r, a in enumerate(answers)]
    rows = [r for r, a in enumerate(answers) if a is not None]
    if not rows:
        return answers
    cache.crop(-(cache.get_seq_length() - (width - drop)))
    rows_t = torch.tensor(rows, device=vlm.device)
    if len(rows) < len(answers):
        cache.batch_select_indices(rows_t)
    kept = [len(prompts[r].input_ids) - drop for r in rows]  # each row's tokens left in the cache
    suffixes = [answers[r].input_ids[k:] for r, k in zip(rows, kept)]
    # suffix position j is the answer's token kept + j: scored from the answer's n_prompt on
    scored_from = torch.tensor([answers[r].n_prompt - k for r, k in zip(rows, kept)], device=vlm.device)
    ids, mask = _right_padded(vlm, suffixes)
    w = ids.shape[1]
    before = prompt_mask[rows_t]
    positions = (before.sum(1, keepdim=True) - drop) + torch.arange(w, device=vlm.device)
    hidden, _ = _hidden_states(vlm, input_ids=ids, attention_mask=torch.cat([before[:, :width - drop], mask], 1),
                               position_ids=positions, cache=cache, use_cache=True)
    scored = mask[:, 1:].bool() & (torch.arange(1, w, device=vlm.device) >= scored_from[:, None])
    stats = iter(_answer_tokens(_log_probs(vlm, hidden[:, :-1][scored]), ids[:, 1:][scored],
                                scored.sum(1).tolist()))
    return [next(stats) if a is not None else None for a in answers]


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Log-softmax in float32 for a bfloat16/float16 model, in float64 for a float64 one."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _generation_model(vlm: VisionLanguageModel):
    """The ``*ForConditionalGeneration`` itself, also under a peft wrapper (a model being trained with LoRA: its
    adapters are injected in place, so the unwrapped model runs them)."""
    return vlm.model.get_base_model() if hasattr(vlm.model, "get_base_model") else vlm.model


def _hidden_states(vlm: VisionLanguageModel, **inputs):
    """The model's forward without its LM head: (last hidden states [batch x length x hidden], the outputs, with
    the cache). Every registered family's ``*ForConditionalGeneration`` computes its logits as ``lm_head`` of
    ``model(...)[0]`` (transformers 5: LLaVA, Idefics2, Qwen2.5-VL), so the head can run on the positions that
    are scored only: at paper size a batch of 16 x 700 positions over Qwen2.5-VL's 152k vocabulary is 6.8 GB of
    float32 logits, of which an answer needs a few rows."""
    out = _generation_model(vlm).model(**inputs)
    return out[0], out


def _log_probs(vlm: VisionLanguageModel, hidden: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the vocabulary of the LM head at the given hidden states ([n x hidden] -> [n x vocab])."""
    return torch.log_softmax(_at_least_float32(_generation_model(vlm).lm_head(hidden)), -1)


def _scored_positions(vlm: VisionLanguageModel, items: list[Encoded]):
    """One right-padded batch of whole items run once: the log-probabilities predicting each continuation token
    ([scored tokens x vocabulary], position t predicts token t + 1), those tokens, and each item's count."""
    batch = vlm.collate(items, padding_side="right", labels="answer")
    target = batch.pop("labels")[:, 1:]
    keep = target != -100
    hidden, _ = _hidden_states(vlm, **batch, use_cache=False)
    return _log_probs(vlm, hidden[:, :-1][keep]), target[keep], keep.sum(1).tolist()


@torch.inference_mode()
def continuation_logliks(vlm: VisionLanguageModel, items: list[Encoded], batch_size: int) -> list[float]:
    """Sum of log p over each item's continuation tokens (those past ``n_prompt``)."""
    out = [0.0] * len(items)
    order = _order(items)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        logp, tokens, counts = _scored_positions(vlm, [items[i] for i in idx])
        sums = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).split(counts)
        for i, v in zip(idx, sums):
            out[i] = float(v.sum())
    return out


def _right_padded(vlm: VisionLanguageModel, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists as one right-padded batch on the model's device: (ids, attention mask)."""
    width = max(len(x) for x in sequences)
    ids = torch.full((len(sequences), width), vlm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for r, x in enumerate(sequences):
        ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
    return ids.to(vlm.device), mask.to(vlm.device)


def _shared_length(group: list[Encoded]) -> int:
    """Tokens every item of a group starts with and none scores: the common token prefix, capped at the
    shortest prompt (a BPE merge across the prompt/continuation boundary ends it earlier)."""
    n = min(e.n_prompt for e in group)
    for e in group[1:]:
        n = common_prefix(e.input_ids, group[0].input_ids, n)
    return n


def _continue_on_shared_prefix(vlm: VisionLanguageModel, groups: list[list[Encoded]], shared: list[int],
                               gi: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One batch of groups whose items share their first ``shared[i]`` tokens and images: each group's shared
    tokens run once (right-padded), and its items' own tokens run on that KV cache with the position ids that
    follow the prefix's real tokens, so each row's scores are those of the item run whole. Returns, for every
    item of the groups ``gi`` in order, the log-probabilities predicting its scored (continuation) tokens
    ([scored tokens x vocabulary]; token t of an item's own tokens is predicted by the prefix's last position for
    t = 0, else by its own position t - 1), those tokens, and each item's count. The LM head runs on those
    positions only."""
    prompts = [Encoded(groups[i][0].input_ids[:shared[i]], shared[i], groups[i][0].images) for i in gi]
    batch = vlm.collate(prompts, padding_side="right")
    prefix_hidden, res = _hidden_states(vlm, **batch, use_cache=True)
    lengths = batch["attention_mask"].sum(1)
    rows = torch.arange(len(gi), device=vlm.device)
    last = prefix_hidden[rows, lengths - 1]  # the prefix's last position: it predicts each item's first own token
    owner = [b for b, i in enumerate(gi) for _ in groups[i]]
    suffixes = [e.input_ids[shared[i]:] for i in gi for e in groups[i]]
    scored_from = [e.n_prompt - shared[i] for i in gi for e in groups[i]]  # suffix tokens before: context
    ids, mask = _right_padded(vlm, suffixes)
    width = ids.shape[1]
    owner_t = torch.tensor(owner, device=vlm.device)
    cache = res.cache
    cache.batch_select_indices(owner_t)
    attention = torch.cat([batch["attention_mask"][owner_t], mask], dim=1)
    positions = lengths[owner_t].unsqueeze(1) + torch.arange(width, device=vlm.device)
    hidden, _ = _hidden_states(vlm, input_ids=ids, attention_mask=attention, position_ids=positions, cache=cache,
                               use_cache=True)
    predicting = torch.cat([last[owner_t].unsqueeze(1), hidden[:, :-1]], dim=1)  # the position before each token
    scored = mask.bool() & (torch.arange(width, device=vlm.device)
                            >= torch.tensor(scored_from, device=vlm.device)[:, None])
    return _log_probs(vlm, predicting[scored]), ids[scored], scored.sum(1).tolist()


def _shared_lengths(vlm: VisionLanguageModel, groups: list[list[Encoded]]) -> list[int]:
    """Per group, the tokens its items share and run once (0: score its items whole): groups whose items show
    different images, or share no token, or a family that cannot continue a cache (``Family.no_cache_reuse``:
    Qwen2.5-VL's position ids run over the whole sequence, registry.py) are scored whole."""
    if vlm.family.no_cache_reuse is not None:
        return [0] * len(groups)
    return [_shared_length(g) if len({e.images for e in g}) == 1 else 0 for g in groups]


def _shared_prefix_batches(groups: list[list[Encoded]], shared: list[int], batch_size: int):
    """The groups that share a prefix, shortest prefix first, as many per batch as keep its rows (items) within
    ``batch_size``: the memory of a batch of whole items."""
    todo = sorted((i for i, n in enumerate(shared) if n > 0), key=lambda i: shared[i])
    per_batch = max(1, batch_size // max((len(groups[i]) for i in todo), default=1))
    for start in range(0, len(todo), per_batch):
        yield todo[start:start + per_batch]


@torch.inference_mode()
def grouped_continuation_logliks(vlm: VisionLanguageModel, groups: list[list[Encoded]],
                                 batch_size: int) -> list[list[float]]:
    """``continuation_logliks`` for groups of items that share their prompt (a question's answer options): each
    group's shared tokens and images run once, and its items' own tokens run on that KV cache, instead of every
    option prefilling the whole prompt again (4 options: ~4x fewer prompt tokens). Every score is the one of
    scoring the item whole (tested equal in float64); ``_shared_lengths`` says which groups are scored whole."""
    out: list[list[float]] = [[0.0] * len(g) for g in groups]
    shared = _shared_lengths(vlm, groups)
    whole = [i for i, n in enumerate(shared) if n == 0]
    if whole:
        flat = [(i, j) for i in whole for j in range(len(groups[i]))]
        for (i, j), v in zip(flat, continuation_logliks(vlm, [groups[i][j] for i, j in flat], batch_size)):
            out[i][j] = v
    for gi in _shared_prefix_batches(groups, shared, batch_size):
        logp, tokens, counts = _continue_on_shared_prefix(vlm, groups, shared, gi)
        sums = iter(float(v.sum()) for v in logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).split(counts))
        for i in gi:
            out[i] = [next(sums) for _ in groups[i]]
    return out


@dataclass
class AnswerTokens:
    """Teacher-forced statistics of one item's continuation (answer) tokens, one value per token: its log
    probability, whether it is the model's top-1 prediction, and the mean and standard deviation of log p over
    the vocabulary at that position (the normalisers of Min-K%++)."""

    logp: list[float]
    top1: list[bool]
    mean_logp: list[float]
    std_logp: list[float]


def _answer_tokens(logp: torch.Tensor, tokens: torch.Tensor, counts: list[int]) -> list[AnswerTokens]:
    """``AnswerTokens`` from the log-probability rows ([answer tokens x vocabulary]) predicting ``tokens``, split
    into items of ``counts`` tokens."""
    token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    top1 = logp.argmax(-1) == tokens
    prob = logp.exp()
    mean = (prob * logp).sum(-1)
    std = ((prob * logp.square()).sum(-1) - mean.square()).clamp(min=0).sqrt()
    columns = [t.split(counts) for t in (token_logp, top1, mean, std)]
    return [AnswerTokens(*(c[k].tolist() for c in columns)) for k in range(len(counts))]


@torch.inference_mode()
def answer_token_stats(vlm: VisionLanguageModel, items: list[Encoded], batch_size: int) -> list[AnswerTokens]:
    """``AnswerTokens`` for each item's tokens past ``n_prompt``: one forward pass per item, batched by length;
    the LM head and the vocabulary-wide statistics run at answer positions only (an [answer tokens x vocabulary]
    tensor, not [batch x length x vocabulary]). Items that show the same images (a person's fine-tuning QA pairs on
    their photo) are scored as groups on their shared prefix (``grouped_continuation_logliks``' path, at most
    ``batch_size`` items a group): the image and the template before the question run once per group, not once
    per item (LLaVA-1.5: 576 of a QA pair's ~600 tokens). The statistics are those of scoring each item whole
    (tested equal in float64)."""
    out: list[AnswerTokens | None] = [None] * len(items)
    by_images: dict[tuple, list[int]] = {}
    for i, e in enumerate(items):
        if e.images:
            by_images.setdefault(e.images, []).append(i)
    members = [ix[k:k + batch_size] for ix in by_images.values() for k in range(0, len(ix), batch_size)]
    members = [m for m in members if len(m) > 1]
    groups = [[items[i] for i in m] for m in members]
    shared = _shared_lengths(vlm, groups)
    for gi in _shared_prefix_batches(groups, shared, batch_size):
        stats = _answer_tokens(*_continue_on_shared_prefix(vlm, groups, shared, gi))
        for i, tokens in zip((i for g in gi for i in members[g]), stats):
            out[i] = tokens
    rest = [i for i, tokens in enumerate(out) if tokens is None]
    order = sorted(rest, key=lambda i: len(items[i].input_ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for i, tokens in zip(idx, _answer_tokens(*_scored_positions(vlm, [items[i] for i in idx]))):
            out[i] = tokens
    return out
