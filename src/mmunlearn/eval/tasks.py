"""Declared evaluation tasks (lm-evaluation-harness style): a task names its questions, prompt, demonstration,
stopping rule, parser and metrics; one generic runner scores any task on any split and input modality, for
any model of the registry (each model's own tokenisation of the same prompt strings, spec §2).

Adding a task is one ``register_task(Task(...))``: no per-task or per-modality evaluation loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from ..data.schema import IMAGE_TEXT, MODALITIES, MCQuestion, OpenQuestion, Profile, QAPair
from ..models import prompts
from ..models.registry import Encoded, VisionLanguageModel
from ..train.examples import name_the_person
from . import mmmu, privacy
from .decode import (AnswerTokens, DecodeStats, answer_token_stats, check_context, context_length,
                     generate_and_score, grouped_continuation_logliks, shares_prefix)

log = logging.getLogger(__name__)

LETTER_PARSERS = {"first_character": prompts.parse_letter, "answer_letter": prompts.parse_answer_letter}


@dataclass
class EvalContext:
    vlm: VisionLanguageModel
    split: str
    images: dict[str, bytes]  # the image each evaluated profile is shown with
    batch_size: int
    max_new_tokens: int
    fewshot_profiles: list[Profile] = field(default_factory=list)  # demonstrations, chosen by the split file
    stopping_rule: bool = True  # stop where the parser cannot read further (classification: first letter)
    letter_parser: str = "first_character"  # the original's rule; "answer_letter": corrected
    decode_from: str = "new_tokens"  # or "sequence": the original's whole-sequence decode (spec §2.2)
    reuse_prefix: bool = True  # prefill the shared few-shot block once per split and task
    stats: DecodeStats = field(default_factory=DecodeStats)
    seed: int = 42  # seeded choices inside scoring (MMMU's random fallback)
    options: dict = field(default_factory=dict)  # the task's own settings (utility.<benchmark>: parser, ...)
    ridden: dict[str, list[dict]] = field(default_factory=dict)  # modality -> records scored on a host's prefill


@dataclass(frozen=True)
class Task:
    name: str
    metrics: tuple[str, ...]
    questions: Callable[[Profile, str], list]  # a profile's questions of this task in one input modality
    prompt: Callable[[object, bool, str], str]  # (question, with image, few-shot block) -> prompt
    gold: Callable[[object], str]
    score: Callable[[str, object, EvalContext], dict]  # (response, question, ctx) -> {parsed, score{metric: v}}
    demo: Callable[[object, bool], str] | None = None  # one demonstration; None: zero-shot everywhere
    fewshot_splits: tuple[str, ...] = ()  # splits on which the original shows demonstrations
    stop: str = "eos"  # "first_visible": the parser reads one character
    after_answer: bool = False  # the original's response also falls back to the text after "Answer:"
    extra: Callable[[list[dict], list[tuple[str, tuple]], EvalContext], None] | None = None  # more scoring
    generate: bool = True  # False: a teacher-forced task; ``extra`` or ``answers`` scores it, nothing is decoded
    # a teacher-forced task's items (prompt + gold answer) and gold answers, from its (question, images) pairs:
    # scored by ``_score_answers`` (per-token likelihood statistics)
    answers: Callable[[list[tuple], EvalContext], tuple[list[Encoded], list[str]]] | None = None
    # the generating task whose prompts its ``answers`` items continue: where both are scored, they are scored on
    # that task's prefill (eval/decode.py ``generate_and_score``), not prefilled again
    rides_on: str | None = None
    training_rows: bool = False  # its questions are the people's fine-tuning QA pairs (Profile.qa, name)
    splits: tuple[str, ...] | None = None  # the splits it is scored on; None: every split
    modalities: tuple[str, ...] = MODALITIES  # the input modalities it is scored in
    images_of: Callable[[object], tuple[bytes, ...]] | None = None  # a question's own images (else its person's)
    benchmark: str | None = None  # a utility benchmark's task (data/utility.py): its items are its "people"


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown evaluation task '{name}'; known: {sorted(TASKS)}")
    return TASKS[name]


@dataclass
class Prepared:
    """A task's prompts on one split and modality, before any model call."""

    records: list[dict]  # one per scored question: ids, question, gold
    questions: list
    prompts: list[str]
    images: list[tuple[bytes, ...]]
    prefix: str = ""  # the few-shot block every prompt starts with
    prefix_images: tuple[bytes, ...] = ()
    encoded: list | None = None  # the prompts tokenised, once the context check has done it


def prepare(task: Task, profiles: list[Profile], modality: str, ctx: EvalContext) -> Prepared:
    """Demonstrations and prompts. A demo profile's questions are skipped by list index wherever that profile is
    scored, also on Test_Set (whose questions are paraphrases), as the original does (spec §2.5)."""
    with_image = modality == IMAGE_TEXT
    fewshot, demo_images, skip = "", (), set()
    if task.demo is not None and ctx.split in task.fewshot_splits:
        for demo in ctx.fewshot_profiles:
            for i, q in enumerate(task.questions(demo, modality)):
                fewshot += task.demo(q, with_image)
                demo_images += (demo.image,) if with_image else ()
                skip.add((demo.id, i))
    out = Prepared([], [], [], [], fewshot, demo_images)
    for p in profiles:
        image = (ctx.images[p.id],) if with_image and task.images_of is None else ()
        for i, q in enumerate(task.questions(p, modality)):
            if (p.id, i) in skip:
                continue
            out.records.append({"prompt_id": f"{p.id}/{modality}/{i}", "profile_id": p.id,
                                "question": q["question"] if isinstance(q, dict) else q.question,
                                "gold": task.gold(q)})
            out.questions.append(q)
            out.prompts.append(ctx.vlm.render(task.prompt(q, with_image, fewshot)))  # in the family's chat template
            out.images.append(demo_images + (task.images_of(q) if task.images_of else image))
    return out


def drop_too_long(prep: Prepared, task: Task, ctx: EvalContext) -> list[dict]:
    """A utility benchmark's prompts that cannot fit the model's context with the task's new tokens (an MMMU
    question with seven images on a 4k-context model) are not scored: taken out of ``prep``, returned as records
    that say why, and counted in the metrics (``not_scored``), never scored as wrong or silently dropped."""
    limit = context_length(ctx.vlm)
    keep, dropped = [], []
    prep.encoded = ctx.vlm.encode_all(prep.prompts, images=prep.images)
    for k, item in enumerate(prep.encoded):
        n = len(item.input_ids)
        if n + ctx.max_new_tokens > limit:
            dropped.append({**prep.records[k], "score": {},
                            "not_scored": f"{n} prompt tokens + {ctx.max_new_tokens} new > context {limit}"})
        else:
            keep.append(k)
    if dropped:
        log.warning("%s/%s: %d prompts exceed the context of %d tokens and are not scored: %s", ctx.split,
                    task.name, len(dropped), limit, ", ".join(r["prompt_id"] for r in dropped[:5]))
        for name in ("records", "questions", "prompts", "images", "encoded"):
            setattr(prep, name, [getattr(prep, name)[k] for k in keep])
    return dropped


def response(output: str, task: Task, ctx: EvalContext) -> str:
    """What the parsers read: the generated text; with the original's whole-sequence decode, the text after
    the first "ASSISTANT:" (cloze and generation: else after "Answer:")."""
    if ctx.decode_from == "sequence":
        return prompts.answer_text(output, after_answer=task.after_answer)
    return output.strip()


def _teacher_forced(task: Task, prep: Prepared, ctx: EvalContext, built: tuple[list, list[str]] | None = None,
                    riding: dict[str, AnswerTokens] | None = None) -> list[dict]:
    """A teacher-forced task's records: its ``answers`` (``built`` already) scored, those in ``riding`` already
    were, on another task's prefill (by prompt id); or its ``extra``."""
    for rec in prep.records:
        rec["score"] = {}
    pairs = [(q, imgs) for q, imgs in zip(prep.questions, prep.images)]
    if task.answers is None:
        task.extra(prep.records, pairs, ctx)
    else:
        _score_answers(prep.records, *(built or task.answers(pairs, ctx)), ctx,
                       [(riding or {}).get(rec["prompt_id"]) for rec in prep.records])
    return prep.records


def encode_groups(vlm: VisionLanguageModel, groups: list[list[tuple[str, str, tuple]]]) -> list[list[Encoded]]:
    """Groups of (prompt, continuation, images) items (a question's answer options), encoded in one
    ``encode_all``."""
    flat = [item for group in groups for item in group]
    encoded = iter(vlm.encode_all(*(list(column) for column in zip(*flat)))) if flat else iter(())
    return [[next(encoded) for _ in group] for group in groups]


def run_task(task: Task, profiles: list[Profile], modality: str, ctx: EvalContext,
             rider: tuple[Task, EvalContext] | None = None) -> list[dict]:
    """Score ``task`` on ``profiles`` in one input modality: per-sample records with raw output, parsed answer
    and score. ``rider``: a teacher-forced task (and its context) whose items continue this task's prompts
    (``Task.rides_on``): scored on this task's prefill, its records left in its context's ``ridden``."""
    prep = prepare(task, profiles, modality, ctx)
    dropped = drop_too_long(prep, task, ctx) if task.benchmark else []
    if not prep.records:
        return dropped
    if not task.generate:
        return _teacher_forced(task, prep, ctx)
    items = prep.encoded or ctx.vlm.encode_all(prep.prompts, images=prep.images)
    check_context(ctx.vlm, items, ctx.max_new_tokens, f"{ctx.split}/{task.name}/{modality}",
                  [r["prompt_id"] for r in prep.records])
    prefix = None
    if ctx.reuse_prefix and prep.prefix and ctx.vlm.family.no_cache_reuse:
        log.info("%s/%s: few-shot prefix not reused for %s: %s", ctx.split, task.name, ctx.vlm.family.name,
                 ctx.vlm.family.no_cache_reuse)
    elif ctx.reuse_prefix and prep.prefix:
        prefix = ctx.vlm.encode(prep.prefix, images=prep.prefix_images)
        if not shares_prefix(items, prefix):
            log.warning("%s/%s: the few-shot block tokenises differently inside prompts; not reusing it",
                        ctx.split, task.name)
            prefix = None
    answers, rider_prep = [None] * len(items), None
    if rider is not None and modality in rider[0].modalities:
        rider_prep = prepare(rider[0], profiles, modality, rider[1])
        built = rider[0].answers(list(zip(rider_prep.questions, rider_prep.images)), rider[1])
        position = {rec["prompt_id"]: k for k, rec in enumerate(prep.records)}
        for rec, item in zip(rider_prep.records, built[0]):
            if rec["prompt_id"] in position:
                answers[position[rec["prompt_id"]]] = item
    outputs, riding = generate_and_score(ctx.vlm, items, answers, ctx.max_new_tokens, ctx.batch_size,
                                         stop=task.stop if ctx.stopping_rule else "eos", prefix=prefix,
                                         decode_from=ctx.decode_from, stats=ctx.stats)
    if rider_prep is not None:
        scored = {rec["prompt_id"]: t for rec, t in zip(prep.records, riding) if t is not None}
        rider[1].ridden[modality] = _teacher_forced(rider[0], rider_prep, rider[1], built, scored)
    for rec, q, out in zip(prep.records, prep.questions, outputs):
        rec.update(raw_output=out, **task.score(response(out, task, ctx), q, ctx))
    if task.extra is not None:
        task.extra(prep.records, [(q, imgs[len(prep.prefix_images):]) for q, imgs in zip(prep.questions,
                                                                                           prep.images)], ctx)
    return prep.records + dropped


# --- classification ------------------------------------------------------------------------------------------

def _classification_score(text: str, q: MCQuestion, ctx: EvalContext) -> dict:
    parsed = LETTER_PARSERS[ctx.letter_parser](text, q.options)
    return {"options": q.options, "parsed": parsed, "score": {"accuracy": float(parsed == q.answer)}}


def _option_loglik(records: list[dict], questions: list[tuple[MCQuestion, tuple]], ctx: EvalContext) -> None:
    """``accuracy_loglik``: the option whose text is most likely after the question (zero-shot, context = the
    QA prompt, continuation = " " + option text, summed log-probability), lm-evaluation-harness style. A
    question's options share its prompt, which runs once for all of them (``grouped_continuation_logliks``).

    From the same log-likelihoods, per token (``option_nll``: mean NLL of each option's tokens), the TOFU-style
    ``option_prob`` (P̃(correct) / Σ P̃(options)) and ``truth_ratio`` (the split's convention of R, which is
    recorded raw as ``truth_ratio_raw`` for the forget-quality test in aggregation): eval/privacy.py."""
    # LLaVA's wording for every family, as eval.py
    qa = [ctx.vlm.render(prompts.qa_prompt(q.question, bool(image))) for q, image in questions]
    groups = encode_groups(ctx.vlm, [[(text, " " + q.options[k], image) for k in q.options]
                                     for text, (q, image) in zip(qa, questions)])
    for rec, (q, _), group, scores in zip(records, questions, groups,
                                          grouped_continuation_logliks(ctx.vlm, groups, ctx.batch_size)):
        keys = list(q.options)
        best = keys[max(range(len(keys)), key=scores.__getitem__)]
        nll = {k: -v / max(1, len(e.input_ids) - e.n_prompt) for k, v, e in zip(keys, scores, group)}
        r = privacy.truth_ratio(nll, q.answer)
        rec.update(loglik=dict(zip(keys, scores)), parsed_loglik=best, option_nll=nll, truth_ratio_raw=r)
        rec["score"].update(accuracy_loglik=float(best == q.answer),
                            option_prob=privacy.option_probability(nll, q.answer),
                            truth_ratio=privacy.truth_ratio_score(r, ctx.split))


register_task(Task(
    name="classification", metrics=("accuracy", "accuracy_loglik", "option_prob", "truth_ratio"),
    questions=lambda p, modality: p.classification[modality],
    prompt=lambda q, with_image, fewshot: prompts.mc_prompt(q.question, q.options, with_image, fewshot),
    demo=lambda q, with_image: prompts.mc_demo(q.question, q.options, q.answer, with_image),
    fewshot_splits=("forget", "test", "retain"),  # celebrity classification is zero-shot (spec §2.5)
    gold=lambda q: q.answer, score=_classification_score, stop="first_visible", extra=_option_loglik))


# --- cloze (fill in the blank) --------------------------------------------------------------------------------

def _cloze_score(text: str, q: OpenQuestion, ctx: EvalContext) -> dict:
    """Correct iff the ground truth, lower-cased, is a substring of the response, lower-cased (spec §2.3)."""
    return {"parsed": text, "score": {"accuracy": float(q.ground_truth.lower() in text.lower())}}


register_task(Task(
    name="cloze", metrics=("accuracy",),
    questions=lambda p, modality: [q for q in p.cloze if q.modality == modality],
    prompt=lambda q, with_image, fewshot: prompts.cloze_prompt(q.question, with_image, fewshot),
    demo=lambda q, with_image: prompts.cloze_demo(q.question, q.ground_truth, with_image),
    fewshot_splits=("forget", "test", "retain", "celebrity"),  # spec §2.5 (celebrity: see README)
    gold=lambda q: q.ground_truth, score=_cloze_score, after_answer=True))


# --- generation -------------------------------------------------------------------------------------------

_ROUGE = None


def rouge_scores(target: str, prediction: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measure with the Porter stemmer (rouge-score, as eval.py), plus NLTK sentence BLEU on
    whitespace tokens with smoothing method 1 (eval.py's extra)."""
    global _ROUGE
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    if _ROUGE is None:
        _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    r = _ROUGE.score(target, prediction)
    bleu = sentence_bleu([target.split()], prediction.split(), smoothing_function=SmoothingFunction().method1) \
        if prediction.split() else 0.0
    return {"rouge1": r["rouge1"].fmeasure, "rouge2": r["rouge2"].fmeasure, "rougeL": r["rougeL"].fmeasure,
            "bleu": float(bleu)}


register_task(Task(
    name="generation", metrics=("rouge1", "rouge2", "rougeL", "bleu"),
    questions=lambda p, modality: [q for q in p.generation if q.modality == modality],
    prompt=lambda q, with_image, fewshot: prompts.generation_prompt(q.question, with_image),
    gold=lambda q: q.ground_truth, after_answer=True,  # zero-shot on every split (spec §2.4)
    score=lambda text, q, ctx: {"parsed": text, "score": rouge_scores(q.ground_truth, text)}))


# --- likelihood (teacher-forced privacy and memorisation measures) -------------------------------------------

def _score_answers(records: list[dict], items: list[Encoded], answers: list[str], ctx: EvalContext,
                  done: list[AnswerTokens | None] | None = None) -> None:
    """Teacher-forced answers: per item the mean answer NLL, the four membership scores (``mia``: higher = more
    likely a non-member; their AUCs and PrivLeak are computed in aggregation against the holdout people), exact
    memorisation and extraction strength (eval/privacy.py). One forward pass per item, batched by length; items
    whose statistics are ``done`` (scored on a generation prefill) are not run again."""
    check_context(ctx.vlm, items, 0, f"{ctx.split}/likelihood", [r["prompt_id"] for r in records])
    done = done or [None] * len(items)
    todo = [k for k, t in enumerate(done) if t is None]
    computed = iter(answer_token_stats(ctx.vlm, [items[k] for k in todo], ctx.batch_size))
    stats = [t if t is not None else next(computed) for t in done]
    for rec, answer, tokens in zip(records, answers, stats):
        mia = privacy.mia_scores(tokens.logp, tokens.mean_logp, tokens.std_logp, answer)
        rec.update(answer_tokens=len(tokens.logp), mia=mia)
        rec["score"] = {"answer_nll": mia["loss"], "exact_memorisation": privacy.exact_memorisation(tokens.top1),
                        "extraction_strength": privacy.extraction_strength(tokens.top1)}


def _generation_answers(questions: list[tuple[OpenQuestion, tuple]], ctx: EvalContext) -> tuple[list, list[str]]:
    """``likelihood``: the generation questions' ground-truth answers after the generation prompt (zero-shot), the
    generation task's prompt up to trailing whitespace: scored on that task's prefill where both run."""
    items = ctx.vlm.encode_all([ctx.vlm.render(prompts.generation_prompt(q.question, bool(image))).rstrip()
                                for q, image in questions],
                               [" " + q.ground_truth for q, _ in questions], [image for _, image in questions])
    return items, [q.ground_truth for q, _ in questions]


def _training_answers(questions: list[tuple[QAPair, tuple]], ctx: EvalContext) -> tuple[list, list[str]]:
    """``likelihood_qa``: the people's fine-tuning QA pairs exactly as fine-tuning showed them (the family's
    training prompt; image+text: the row's question with the evaluated image, text: the person named instead),
    the samples membership inference asks about in the strictest sense."""
    items = ctx.vlm.encode_all([ctx.vlm.family.train_prompt(qa.question, bool(image)) for qa, image in questions],
                               [" " + qa.answer for qa, _ in questions], [image for _, image in questions])
    return items, [qa.answer for qa, _ in questions]


LIKELIHOOD_METRICS = ("answer_nll", "exact_memorisation", "extraction_strength")
register_task(Task(
    name="likelihood", metrics=LIKELIHOOD_METRICS,
    questions=lambda p, modality: [q for q in p.generation if q.modality == modality],
    prompt=lambda q, with_image, fewshot: prompts.generation_prompt(q.question, with_image),
    gold=lambda q: q.ground_truth, score=lambda text, q, ctx: {}, answers=_generation_answers, generate=False,
    rides_on="generation"))


def _training_question(qa: QAPair, p: Profile, modality: str) -> QAPair:
    """A fine-tuning QA pair as the modality's training format asks it (train/examples.items_for)."""
    if modality == IMAGE_TEXT:
        return qa
    if not p.name:
        raise ValueError(f"profile {p.id}: no name known for the text-only QA pairs (validate_data's facts)")
    return QAPair(name_the_person(qa.question, p.name), qa.answer)


register_task(Task(
    # forget, retain and the holdout: the Test set's people are the forget people, whose QA pairs are the same
    # rows (text-only: the same prompts), and the celebrities have none
    name="likelihood_qa", metrics=LIKELIHOOD_METRICS, training_rows=True, splits=("forget", "retain", "holdout"),
    questions=lambda p, modality: [_training_question(qa, p, modality) for qa in p.qa],
    prompt=lambda q, with_image, fewshot: q.question,
    gold=lambda q: q.answer, score=lambda text, q, ctx: {}, answers=_training_answers, generate=False))


# --- utility benchmarks (issue 17; data/utility.py, eval/mmmu.py, eval/llava_bench.py) ------------------------
# Their questions are dicts (eval/runner.py ``benchmark_units``); the prompts are LLaVA-style for every family,
# as the MLLMU-Bench tasks' are.

def utility_prompt(text: str) -> str:
    """``USER: {text}\nASSISTANT:`` with each of the text's "<image n>" references in place: its first occurrence
    becomes the model's image token (the question's images are shown in order of first reference,
    ``mmmu.parse_item``), a later one the words "image n", so that tokens and images pair up one to one."""
    seen = set()

    def place(m):
        if m[1] in seen:
            return f"image {m[1]}"
        seen.add(m[1])
        return prompts.IMAGE_TOKEN

    return f"USER: {mmmu.IMAGE_TOKEN.sub(place, text)}\nASSISTANT:"


def _mmmu_score(text: str, q: dict, ctx: EvalContext) -> dict:
    out = mmmu.score(q, text, ctx.seed, ctx.options.get("parser", "mmmu"))
    return {"question_id": q["id"], "subject": q["subject"], "question_type": q["question_type"],
            "parsed": out["parsed"], "parse": out["how"], "score": {"accuracy": float(out["correct"])}}


def _mmmu_letter_loglik(records: list[dict], questions: list[tuple[dict, tuple]], ctx: EvalContext) -> None:
    """``accuracy_loglik`` of the multiple-choice questions: the option letter most likely after the question's
    full prompt (options listed, images shown). Letters, not option texts as in our classification task, because
    MMMU options can be images ("<image 2>"), which cannot be a continuation."""
    mc = [(rec, q, images) for rec, (q, images) in zip(records, questions) if q["question_type"] == "multiple-choice"]
    groups = encode_groups(ctx.vlm, [[(ctx.vlm.render(utility_prompt(mmmu.prompt(q))), " " + x, images)
                                      for x in mmmu.letters(q["options"])] for _, q, images in mc])
    for (rec, q, _), scores in zip(mc, grouped_continuation_logliks(ctx.vlm, groups, ctx.batch_size)):
        keys = mmmu.letters(q["options"])
        best = keys[max(range(len(keys)), key=scores.__getitem__)]
        rec.update(loglik=dict(zip(keys, scores)), parsed_loglik=best)
        rec["score"]["accuracy_loglik"] = float(mmmu.choice_correct(q["answer"], best))


register_task(Task(
    name="mmmu", benchmark="mmmu", splits=("mmmu",), modalities=(IMAGE_TEXT,),
    metrics=("accuracy", "accuracy_loglik"),  # accuracy_loglik: multiple-choice questions only (its n says so)
    questions=lambda unit, modality: unit.questions, images_of=lambda q: q["image_bytes"],
    prompt=lambda q, with_image, fewshot: utility_prompt(mmmu.prompt(q)),
    gold=lambda q: q["answer"], score=_mmmu_score, extra=_mmmu_letter_loglik))


register_task(Task(
    # answers only: the reviewer (eval/llava_bench.py, the review_llava_bench rule) scores them afterwards
    name="llava_bench", benchmark="llava_bench", splits=("llava_bench",), modalities=(IMAGE_TEXT,), metrics=(),
    questions=lambda unit, modality: unit.questions, images_of=lambda q: (q["image"],),
    prompt=lambda q, with_image, fewshot: prompts.qa_prompt(q["question"], True),
    gold=lambda q: q["reference"],
    score=lambda text, q, ctx: {"question_id": q["id"], "category": q["category"], "caption": q["caption"],
                                "parsed": text, "score": {}}))
