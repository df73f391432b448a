"""The training plan: schedules, pairing, epochs and the per-epoch learning rate of the original."""
import pytest

from mmunlearn.train.trainer import TrainConfig, make_plan


def cfg(**kw):
    return TrainConfig(**{"lr": 1.0, "epochs": 2, "batch_size": 2, "seed": 0, **kw})


def test_interleaved_lead_stream_sets_the_epoch_and_others_cycle():
    plan, epochs = make_plan({"forget": 4, "retain": 10}, ("forget", "retain"), {}, cfg())
    assert len(plan) == 4 and epochs == [1, 1, 2, 2]
    assert all(set(step) == {"forget", "retain"} for step in plan)
    first_epoch = sorted(i for step in plan[:2] for i in step["forget"])
    assert first_epoch == [0, 1, 2, 3]  # each forget item once per epoch


def test_sequential_is_forget_pass_then_retain_pass_per_epoch():
    plan, epochs = make_plan({"forget": 4, "retain": 6}, ("forget", "retain"), {}, cfg(schedule="sequential"))
    assert [list(s) for s in plan] == [["forget"]] * 2 + [["retain"]] * 3 + [["forget"]] * 2 + [["retain"]] * 3
    assert epochs == [1] * 5 + [2] * 5
    assert sorted(i for s in plan[2:5] for i in s["retain"]) == list(range(6))


def test_paired_stream_uses_the_same_items():
    plan, _ = make_plan({"forget": 5, "forget_idk": 5, "retain": 3}, ("forget", "forget_idk", "retain"),
                        {"forget_idk": "forget"}, cfg())
    assert all(step["forget_idk"] == step["forget"] for step in plan)


def test_plan_depends_on_the_seed_only():
    a = make_plan({"train": 9}, ("train",), {}, cfg(seed=3))
    assert a == make_plan({"train": 9}, ("train",), {}, cfg(seed=3))
    assert a != make_plan({"train": 9}, ("train",), {}, cfg(seed=4))


def test_group_by_length_pads_less_and_still_sees_every_item_once_per_pass():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(10, 100) for _ in range(640)]
    sizes, streams = {"train": 640}, ("train",)
    plain, _ = make_plan(sizes, streams, {}, cfg(batch_size=8, epochs=3), {"train": lengths})
    grouped, epochs = make_plan(sizes, streams, {}, cfg(batch_size=8, epochs=3, group_by_length=True),
                                {"train": lengths})
    # the flag off: the lengths change nothing (the plan every earlier run used)
    assert plain == make_plan(sizes, streams, {}, cfg(batch_size=8, epochs=3))[0]
    for epoch in (1, 2, 3):
        seen = sorted(i for step, e in zip(grouped, epochs) if e == epoch for i in step["train"])
        assert seen == list(range(640))

    def padding(plan):  # padded tokens: what a batch pads up to its longest item
        return sum(max(lengths[i] for i in s["train"]) * len(s["train"]) - sum(lengths[i] for i in s["train"])
                   for s in plan)

    assert padding(grouped) < 0.2 * padding(plain)
    # still a seeded random order: not sorted overall, the same for the same seed, another for another seed
    firsts = [lengths[s["train"][0]] for s in grouped[:80]]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    assert grouped == make_plan(sizes, streams, {}, cfg(batch_size=8, epochs=3, group_by_length=True),
                                {"train": lengths})[0]
    assert grouped != make_plan(sizes, streams, {}, cfg(batch_size=8, epochs=3, group_by_length=True, seed=1),
                                {"train": lengths})[0]


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_plan({"train": 2}, ("train",), {}, cfg(schedule="zigzag"))


def test_checkpoint_identity_follows_model_content(tmp_path):
    """A run's adapter, a run's model, or a bare model folder (the tiny base's .../base/model) are keyed by
    content, so a retrained input model never resumes a stale checkpoint; a hub id by name."""
    from mmunlearn.train.stages import _identity

    base = tmp_path / "base" / "model"
    base.mkdir(parents=True)
    (base / "model.safetensors").write_bytes(b"v1")
    first = _identity(base)
    assert _identity(tmp_path / "base") == first  # the run folder resolves to its model/
    (base / "model.safetensors").write_bytes(b"v2")
    assert _identity(base) != first
    assert _identity("llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf" and _identity(None) is None


def test_length_chunks_are_for_the_token_mean_nll_only():
    from mmunlearn.train.trainer import train

    with pytest.raises(ValueError, match="length_chunks applies to the token-mean NLL of fine-tuning, not to 'npo'"):
        train(None, "npo", {}, cfg(length_chunks=2))
