"""The paper's experiment configs compose and validate without weights, and prompts
follow each model family's format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gsi.config import ConfigError, validate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("paper*.yaml"))  # reference*: test_reference.py
DATASETS = {
    "paper": "math500",
    "paper_gsm8k": "gsm8k",
    "paper_olympiadbench": "olympiadbench",
    "paper_minerva_math": "minerva_math",
    "paper_mmlu_stem": "mmlu_stem",
}


def test_every_benchmark_has_an_experiment():
    assert set(EXPERIMENTS) == set(DATASETS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_is_the_reference_setup(compose, name):
    cfg = compose(f"+experiment={name}")
    settings = validate(cfg)  # no weights needed: hub ids are not checked on disk
    assert settings.method.name == "gsi"
    assert (settings.params.beta, settings.params.threshold) == (20.0, 0.5)
    assert (settings.n_small, settings.n_big, settings.max_steps) == (16, 16, 45)
    assert (settings.sampling.temperature, settings.sampling.top_p, settings.sampling.max_tokens) == (0.7, 1.0, 512)
    assert cfg.dataset.name == DATASETS[name] and cfg.limit == 500
    assert cfg.model.small.path == "Qwen/Qwen2.5-Math-1.5B-Instruct"
    assert cfg.model.big.path == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert cfg.reward.path == "Qwen/Qwen2.5-Math-PRM-7B"
    assert cfg.model.prompt.style == "chat" and "\\boxed{}" in cfg.model.prompt.system


@pytest.mark.parametrize("override", ["method=rsd", "method=soft_bon_big", "method=gsi_no_reject"])
def test_baselines_are_method_overrides(compose, override):
    cfg = compose("+experiment=paper", override, "threshold=0.7")
    settings = validate(cfg)
    assert settings.method.name == override.split("=")[1] and settings.params.threshold == 0.7
    assert settings.n_small == 16 and cfg.model.big.path == "Qwen/Qwen2.5-Math-7B-Instruct"


def test_three_gpu_layout_puts_each_model_on_its_own_device(compose):
    cfg = compose("+experiment=paper", "model=qwen_math_3gpu", "reward=qwen_prm_3gpu")
    validate(cfg)
    devices = [cfg.model.small.visible_devices, cfg.model.big.visible_devices, cfg.reward.visible_devices]
    assert sorted(devices) == ["0", "1", "2"]


@pytest.mark.e2e
def test_cfg_job_dry_run_prints_the_composed_experiment(tmp_path):
    """`python run.py +experiment=paper --cfg job`: the whole config, nothing loaded."""
    out = subprocess.run(
        [sys.executable, "run.py", "+experiment=paper_gsm8k", "--cfg", "job", "--resolve"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Qwen/Qwen2.5-Math-7B-Instruct" in out.stdout and "openai/gsm8k" in out.stdout
    assert "max_step_tokens: 512" in out.stdout


# ---------------------------------------------------------------- prompts
@pytest.fixture
def chat_tokenizer(tmp_path):
    """The toy tokenizer with a chat template (a Llama-3-like format that writes BOS)."""
    import shutil

    from gsi.config import toy_model_path

    path = tmp_path / "chat_tok"
    shutil.copytree(toy_model_path("small"), path)
    cfg_file = path / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["chat_template"] = (
        "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    cfg_file.write_text(json.dumps(cfg))
    return str(path)


def test_chat_prompt_has_system_user_and_assistant_turn_and_one_bos(chat_tokenizer):
    from transformers import AutoTokenizer

    from gsi.prompting import PromptFormatter
    from gsi.types import Problem

    fmt = PromptFormatter("chat", template="Q: {question}", system="Be brief.", tokenizer=chat_tokenizer)
    (p,) = fmt.apply([Problem("a", "ignored", "3", question="1+2")])
    assert p.prompt == "<system>Be brief.\n\n<user>Q: 1+2\n\n<assistant>"
    assert p.question == "1+2" and p.answer == "3"
    tok = AutoTokenizer.from_pretrained(chat_tokenizer)
    ids = tok.encode(p.prompt, add_special_tokens=True)
    assert ids.count(tok.bos_token_id) == 1  # the template's BOS was dropped; encoding adds it


def test_plain_and_none_styles():
    from gsi.prompting import PromptFormatter
    from gsi.types import Problem

    problems = [Problem("a", "own prompt", "3", question="1+2")]
    assert PromptFormatter("none").apply(problems) == problems
    assert PromptFormatter("plain", template="Problem: {question}\n\n").apply(problems)[0].prompt == "Problem: 1+2\n\n"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"style": "html"}, "model.prompt.style='html' is not allowed"),
        ({"style": "plain", "template": "no slot"}, "has no {question} placeholder"),
        ({"style": "chat"}, "needs model.prompt.tokenizer"),
    ],
)
def test_bad_prompt_config_is_one_clear_error(kwargs, message):
    from gsi.prompting import PromptFormatter

    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        PromptFormatter(**kwargs)


def test_chat_style_with_a_tokenizer_without_template_says_what_to_do():
    from gsi.config import toy_model_path
    from gsi.prompting import PromptFormatter

    with pytest.raises(ConfigError, match="has no chat template: use model.prompt.style=plain"):
        PromptFormatter("chat", tokenizer=toy_model_path("small"))("1+2")


@pytest.mark.parametrize(
    "overrides,gpus",
    [(["+experiment=paper"], 1), (["+experiment=paper", "model=qwen_math_3gpu", "reward=qwen_prm_3gpu"], 3),
     ([], None)],
)
def test_slurm_jobs_ask_for_the_gpus_of_the_layout(compose, overrides, gpus):
    from gsi.launch.resources import gpus_per_task

    assert gpus_per_task(compose(*overrides)) == gpus
