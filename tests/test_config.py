"""The config schema: paper/demo/test configs validate, defaults are filled, bad keys and types are named."""
import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from conftest import REPO

SCHEMA = str(REPO / "schemas/config.schema.yaml")


def load(*extra):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in extra:
        update_config(config, yaml.safe_load((REPO / name).read_text()))
    return config


@pytest.mark.parametrize("extra", [(), ("config/demo.yaml",), ("config/test.yaml",)])
def test_shipped_configs_validate(extra):
    config = load(*extra)
    validate(config, SCHEMA, set_default=True)
    assert config["eval"]["stopping_rule"] is True  # defaults filled in
    assert config["resources"]["default"]["cpus"] >= 1 and config["cluster"]["gpu_request"] == "gpu"
    gpu_rules = ("finetune_vanilla", "finetune_oracle", "unlearn", "evaluate")
    # the paper asks for GPUs; the CPU-only demo and test configs ask for none
    assert all(config["resources"][r]["gpus"] == (0 if extra else 1) for r in gpu_rules)


def test_resources_reject_unknown_rules_and_keys():
    config = load()
    config["resources"]["finetune"] = {"cpus": 2}  # no such rule
    with pytest.raises(Exception, match="finetune"):
        validate(config, SCHEMA, set_default=True)
    config = load()
    config["resources"]["evaluate"]["gpu"] = 1  # the key is gpus
    with pytest.raises(Exception, match="gpu"):
        validate(config, SCHEMA, set_default=True)


def test_paper_settings():
    config = load()
    validate(config, SCHEMA, set_default=True)
    assert config["study"]["forget_ratios"] == [5, 10, 15]
    assert config["finetune"]["lora"] == {"r": 16, "alpha": 16, "dropout": 0.05, "init": "gaussian"}
    assert (config["finetune"]["lr"], config["finetune"]["epochs"], config["finetune"]["batch_size"],
            config["finetune"]["max_length"]) == (2e-5, 5, 4, 384)
    assert set(config["study"]["methods"]) == {"ga", "grad_diff", "kl_min", "npo"}  # the paper's four
    assert set(config["methods"]) == {"ga", "grad_diff", "kl_min", "npo", "simnpo", "idkpo"}  # + two beyond it
    assert config["methods"]["npo"]["beta"] == 0.4
    for m in ("grad_diff", "kl_min"):  # the original's data schedule and per-epoch scheduler (spec 4)
        assert config["methods"][m]["schedule"] == "sequential" and config["methods"][m]["lr_step"] == "epoch"
    assert config["models"]["llava-1.5-7b"]["hub_id"] == "llava-hf/llava-1.5-7b-hf"
    assert config["data"]["hub"]["revision"] == "e91a01eb060b61be8dbde7edb48b121341bd0890"


def test_every_hyper_parameter_names_its_source():
    """Learning rates, epochs, batch sizes, LoRA and method constants carry a [source] comment."""
    text = (REPO / "config.yaml").read_text()
    block = text.split("\nfinetune:")[1].split("\neval:")[0]
    keys = ("lr:", "epochs:", "lora:", "beta:", "gamma:", "retain_weight:", "kl_over:", "npo_level:", "labels:",
            "schedule:", "lr_step:")
    lines = [ln for ln in block.splitlines() if ln.strip().startswith(keys)]
    assert len(lines) > 20
    for line in lines:
        assert "# [" in line, f"config.yaml line without its source: {line.strip()}"


def test_unknown_key_is_rejected_by_name():
    config = load()
    config["finetune"]["learning_rate"] = 1e-4
    with pytest.raises(WorkflowError, match="learning_rate"):
        validate(config, SCHEMA, set_default=True)


def test_unknown_top_level_key_is_rejected_by_name():
    config = load()
    config["metods"] = {}
    with pytest.raises(WorkflowError, match="metods"):
        validate(config, SCHEMA, set_default=True)


def test_wrong_type_names_the_field():
    config = load()
    config["methods"]["ga"]["batch_size"] = "four"
    with pytest.raises(WorkflowError) as err:
        validate(config, SCHEMA, set_default=True)
    assert "'four' is not of type 'integer'" in str(err.value) and "batch_size" in str(err.value)


def test_unpinned_dataset_revision_is_rejected():
    config = load()
    config["data"]["hub"]["revision"] = "main"
    with pytest.raises(WorkflowError, match="revision"):
        validate(copy.deepcopy(config), SCHEMA, set_default=True)


def test_retry_scaling_names_real_rules():
    config = load()
    assert "finetune_vanilla" in config["cluster"]["retry"]["rules"]
    config["cluster"]["retry"]["rules"].append("finetune")  # no such rule
    with pytest.raises(Exception, match="finetune"):
        validate(config, SCHEMA, set_default=True)
