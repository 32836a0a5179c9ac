"""Process reward models: the Qwen-PRM interface on transformers and vLLM, aggregation,
the step-tag LM family, and the toy PRM trained by ``python -m gsi.toy.train_prm``."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gsi.config import ASSETS
from gsi.rewards.prm_format import QWEN_STEP_TAG, aggregate, qwen_prm_messages, render_qwen_prm
from gsi.toy.task import generate_problems, parse_prompt

PRM = ASSETS / "prm"
Q = "Compute 7-5*9+3 from left to right.\n\n"
STEPS = ["7-5=2\n\n", "2*9=18\n\n"]


@pytest.fixture(scope="module")
def hf_prm():
    from gsi.rewards.prm import HFQwenPRM

    return HFQwenPRM(str(PRM), name="toy_prm", num_threads=1)


def batch_inputs():
    """Several problems, prefixes of every length, right and wrong candidates."""
    from gsi.toy.prm_data import wrong_steps

    questions, previous, candidates = [], [], []
    for k, p in enumerate(generate_problems(6, seed=3, heldout=True)):
        ref = p.solution_steps()
        i = k % len(ref)
        questions.append(p.prompt)
        previous.append(ref[:i])
        candidates.append([ref[i], *wrong_steps(p, i)[:4]])
    return questions, previous, candidates


# ------------------------------------------------------------------ format and aggregation
def test_aggregation_modes():
    p = np.array([0.9, 0.2, 0.6])
    assert aggregate(p, "last") == 0.6
    assert aggregate(p, "min") == 0.2
    assert aggregate(p, "product") == pytest.approx(0.9 * 0.2 * 0.6)
    assert np.isnan(aggregate(np.array([]), "last")) and np.isnan(aggregate(np.array([0.5, np.nan]), "min"))
    with pytest.raises(ValueError, match="reward.aggregation='mean' is not allowed"):
        aggregate(p, "mean")


def test_chat_rendering_puts_one_tag_after_each_stripped_step():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(PRM)
    text = render_qwen_prm(tok, Q, STEPS)
    assert text == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nCompute 7-5*9+3 from left to right.<|im_end|>\n"
        "<|im_start|>assistant\n7-5=2<extra_0>2*9=18<extra_0><|im_end|>\n"
    )
    ids = tok.encode(text, add_special_tokens=False)
    tag = tok.convert_tokens_to_ids(QWEN_STEP_TAG)
    where = [i for i, t in enumerate(ids) if t == tag]
    assert len(where) == 2
    assert tok.decode(ids[where[0] - 5 : where[0]]) == "7-5=2" and tok.decode(ids[where[1] + 1 :]) == "<|im_end|>\n"
    assert qwen_prm_messages(Q, [])[2]["content"] == ""


def test_toy_prm_assets_are_a_small_qwen2_prm():
    cfg = json.loads((PRM / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["architectures"] == ["Qwen2ForProcessRewardModel"]
    assert cfg["hidden_size"] // cfg["num_attention_heads"] >= 32
    assert {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "train_meta.json"} <= {
        f.name for f in PRM.iterdir()}
    assert sum(f.stat().st_size for f in PRM.iterdir()) < 2 * 2**20
    committed = sum(f.stat().st_size for d in ("small", "big", "prm") for f in (ASSETS / d).iterdir())
    assert committed <= 10 * 10**6  # the three toy models' budget (issue #18)
    from safetensors import safe_open

    with safe_open(PRM / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert {"score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"} <= keys
    assert all(k.startswith(("model.", "score.")) for k in keys)


# ------------------------------------------------------------------ transformers
def test_hf_prm_batches_like_single_calls_and_aggregates(hf_prm):
    questions, previous, candidates = batch_inputs()
    batched = hf_prm.score(questions, previous, candidates)
    assert [len(r) for r in batched] == [len(c) for c in candidates]
    for q, prev, cands, got in zip(questions, previous, candidates, batched):
        alone = np.concatenate([hf_prm.score([q], [prev], [[c]])[0] for c in cands])
        np.testing.assert_allclose(got, alone, atol=1e-5)
        assert np.all((got >= 0) & (got <= 1))
    # min / product read every step of previous + [candidate]
    q, prev, cand = questions[-1], previous[-1], candidates[-1][0]
    steps = hf_prm.step_probabilities([hf_prm.encode(q, prev + [cand])])[0]
    assert len(steps) == len(prev) + 1 and steps[-1] == pytest.approx(batched[-1][0], abs=1e-6)
    for mode, want in (("min", steps.min()), ("product", steps.prod())):
        hf_prm.aggregation = mode
        try:
            assert hf_prm.score([q], [prev], [[cand]])[0][0] == pytest.approx(want, rel=1e-6)
        finally:
            hf_prm.aggregation = "last"


def test_a_step_containing_the_tag_scores_nan(hf_prm):
    r = hf_prm.score([Q], [[]], [["7-5=2\n\n", f"7-5{QWEN_STEP_TAG}=2"]])[0]
    assert np.isfinite(r[0]) and np.isnan(r[1])


def test_trained_prm_ranks_right_steps_above_wrong_ones_on_heldout_problems(hf_prm):
    from gsi.toy.evaluate import heldout_auc

    from gsi.toy.train_prm import PRMSpec

    result = heldout_auc(hf_prm, count=100, seed=99, world=PRMSpec().world)
    print("held-out", result)
    # the committed PRM is a real judge (0.893 when trained); #18 asks for at least 0.85
    assert result["auc"] >= 0.85 and result["mean_right"] > result["mean_wrong"] + 0.4


def test_the_joint_next_token_loss_targets_only_right_continuations():
    import torch

    from gsi.toy.train_prm import aux_targets

    ids = torch.tensor([[5, 6, 7, 8, 9, 0]])
    labels = torch.tensor([[-100, 1, 1, 0, 0, -100]])  # prompt, two right tokens, a wrong one, padding
    assert aux_targets(ids, labels).tolist() == [[6, 7, -100, -100, -100]]


def test_prm_training_saves_only_the_prm_not_its_temporary_lm_head(tmp_path):
    """A few steps of the committed recipe (joint next-token loss on) give a folder the
    transformers PRM loads, with the backbone and score head only."""
    from safetensors import safe_open

    from gsi.rewards.prm import HFQwenPRM
    from gsi.toy.train_prm import PRMSpec, train

    spec = PRMSpec(steps=2, sampled_problems=4, batch=4)
    assert spec.aux_weight > 0
    train(tmp_path, seed=0, evaluate=False, spec=spec)
    with safe_open(tmp_path / "prm" / "model.safetensors", "pt") as f:
        assert all(k.startswith(("model.", "score.")) for k in f.keys())
    assert json.loads((tmp_path / "prm" / "config.json").read_text())["num_hidden_layers"] == spec.layers
    scores = HFQwenPRM(str(tmp_path / "prm"), name="p", num_threads=1).score([Q], [[]], [["7-5=2\n\n"]])
    assert np.all(np.isfinite(scores[0]))


def test_toy_prm_end_to_end(compose, tmp_path):
    from gsi.pipeline import run

    metrics = run(compose("reward=toy_prm", "method=gsi", "limit=8", "n_small=3", "n_big=2", "batch_size=4"), tmp_path)
    assert metrics["num_problems"] == 8 and metrics["num_errors"] == 0
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    rewards = [d["reward"] for r in rows for d in r["steps_detail"]]
    assert rewards and all(0 <= x <= 1 for x in rewards if x is not None)


def test_config_errors_name_the_key(compose):
    from gsi.config import ConfigError, validate

    with pytest.raises(ConfigError, match="reward.aggregation='mean' is not allowed"):
        validate(compose("reward=toy_prm", "reward.aggregation=mean"))
    with pytest.raises(ConfigError, match="reward.path='/nowhere/prm' does not exist"):
        validate(compose("reward=toy_prm", "reward.path=/nowhere/prm"))
    with pytest.raises(Exception, match="batch_sizes"):
        compose("reward=toy_prm", "reward.batch_sizes=3")
    for name in ("qwen_prm", "qwen_prm_hf", "toy_prm_vllm", "math_shepherd", "rlhflow_prm"):
        validate(compose(f"reward={name}"))  # composes against its schema


# ------------------------------------------------------------------ step-tag LM family
def _toy_judge(**kw):
    from gsi.rewards.step_tag_lm import StepTagLMPRM

    base = dict(path=str(ASSETS / "small"), step_tag="\n\n", step_sep="", question_sep="\n\n",
                positive="\\boxed{", negative="9", num_threads=1)
    return StepTagLMPRM(**{**base, **kw})


def _pair_prob(model, tok, text: str) -> float:
    """Independent reference: P(positive) vs P(negative) as the next token after ``text``."""
    import torch

    ids = torch.tensor([tok.encode(text)])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, -1]
    pos, neg = tok.convert_tokens_to_ids("\\boxed{"), tok.convert_tokens_to_ids("9")
    return float(torch.softmax(logits[[pos, neg]], -1)[0])


def test_step_tag_family_judges_after_each_tag():
    judge = _toy_judge(aggregation="min")
    text, cuts = judge.render(Q, STEPS)
    assert text == Q + "".join(STEPS) and cuts == [len(Q) + 7, len(text)]
    got = judge.step_probabilities([judge.encode(Q, STEPS)])[0]
    want = [_pair_prob(judge.model, judge.tokenizer, text[:c]) for c in cuts]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert judge.score([Q], [STEPS[:1]], [[STEPS[1]]])[0][0] == pytest.approx(min(want), abs=1e-5)
    # after the last operation step the toy LM expects the answer: \boxed{ beats "9"
    p = parse_prompt(Q)
    assert _toy_judge().score([Q], [p.solution_steps()[:2]], [[p.solution_steps()[2]]])[0][0] > 0.9


def test_step_tag_family_chat_format_reads_where_each_assistant_turn_starts():
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n\n{% endfor %}" \
               "{% if add_generation_prompt %}assistant: {% endif %}"
    judge = _toy_judge(format="chat", chat_template=template, positive="+", negative="-", question_sep=" ")
    text, cuts = judge.render(Q, STEPS)
    assert text == ("user: Compute 7-5*9+3 from left to right. 7-5=2\n\nassistant: +\n\n"
                    "user: 2*9=18\n\nassistant: +\n\n")
    assert [text[c] for c in cuts] == ["+", "+"]  # never the "+" inside a step
    ids, points = judge.encode(Q, STEPS)
    assert [judge.tokenizer.decode(ids[t]) for t in points] == [" ", " "]
    assert np.all(np.isfinite(judge.score([Q], [[]], [STEPS])[0]))


@pytest.mark.parametrize("format", ["step_tag", "chat"])
def test_step_tag_family_packed_with_cached_prefixes_equals_full_recomputation(format):
    """Step by step, each call extending the previous one's prefixes: the packed, cached
    scores are the full recomputation's; some prefixes come from the cache."""
    from gsi.toy.prm_data import wrong_steps

    kw = {}
    if format == "chat":
        kw = dict(chat_template="{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n\n{% endfor %}"
                                "{% if add_generation_prompt %}assistant: {% endif %}",
                  positive="+", negative="-", question_sep=" ")
    judge = _toy_judge(format=format, aggregation="min", **kw)
    problems = generate_problems(3, seed=8, heldout=True)
    questions = [p.prompt for p in problems]
    for depth in range(3):
        previous = [p.solution_steps()[:depth] for p in problems]
        candidates = [[p.solution_steps()[depth], *wrong_steps(p, depth)[: 1 + 3 * k]] for k, p in enumerate(problems)]
        got = judge.score(questions, previous, candidates)
        for q, prev, cands, values in zip(questions, previous, candidates, got):
            full = judge.step_probabilities([judge.encode(q, list(prev) + [c]) for c in cands])
            np.testing.assert_allclose(values, [f.min() for f in full], atol=1e-5)
    assert judge.prefix_cache.hits >= 3 and len(judge.prefix_cache) <= 3


def test_step_tag_family_rejects_multi_token_labels():
    with pytest.raises(ValueError, match="reward.positive='ab' is 2 tokens"):
        _toy_judge(positive="ab")


# ------------------------------------------------------------------ vLLM
def _vllm_env():
    os.environ.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1",
                      VLLM_NO_USAGE_STATS="1", HF_HUB_OFFLINE="1")


@pytest.mark.vllm
def test_vllm_and_transformers_tokenize_the_toy_prm_identically():
    pytest.importorskip("vllm")
    _vllm_env()
    from transformers import AutoTokenizer
    from vllm.tokenizers import get_tokenizer

    hf, vt = AutoTokenizer.from_pretrained(PRM), get_tokenizer(str(PRM))
    for question, prev, cands in zip(*batch_inputs()):
        text = render_qwen_prm(hf, question, prev + cands[:1])
        assert hf.encode(text, add_special_tokens=False) == vt.encode(text, add_special_tokens=False)
        assert vt.apply_chat_template(qwen_prm_messages(question, prev), tokenize=False) == \
            hf.apply_chat_template(qwen_prm_messages(question, prev), tokenize=False)


@pytest.mark.vllm
def test_vllm_pooling_prm_agrees_with_transformers(compose, hf_prm):
    pytest.importorskip("vllm")
    _vllm_env()
    from hydra.utils import instantiate

    vllm_prm = instantiate(compose("reward=toy_prm_vllm").reward)
    questions, previous, candidates = batch_inputs()
    a, b = vllm_prm.score(questions, previous, candidates), hf_prm.score(questions, previous, candidates)
    worst = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    print("vllm vs transformers max abs diff", worst)
    assert worst < 1e-4
    sols = [prev + [c] for prev, cands in zip(previous, candidates) for c in cands]
    owners = [i for i, cands in enumerate(candidates) for _ in cands]
    encoded = [hf_prm.encode(questions[i], s) for i, s in zip(owners, sols)]
    per_step = zip(vllm_prm.step_probabilities(encoded), hf_prm.step_probabilities(encoded))
    assert all(x.shape == y.shape and np.abs(x - y).max() < 1e-4 for x, y in per_step)


# ------------------------------------------------------------------ reproducibility
@pytest.mark.slow
@pytest.mark.parametrize("which", ["prm"])
def test_training_script_reproduces_the_committed_prm(which, retrained):
    """Bit for bit on the CPU kind and torch version recorded in train_meta.json; on
    another CPU, bit for bit the draw recorded for that kind where its MKL matches the
    emulation, else inside the quality band measured over seeds and emulated CPU kinds
    (``python -m gsi.toy.quality_band``, recorded as ``retrain_band``). The retraining
    (``gsi.toy.train_prm.train`` with the recorded seed) and its verdict run in a
    background child process (``tests/retraining.py``)."""
    from safetensors.torch import load_file

    fresh, verdict = retrained
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
        assert (fresh / name).read_bytes() == (PRM / name).read_bytes(), name
    assert load_file(fresh / "model.safetensors").keys() == load_file(PRM / "model.safetensors").keys()
    assert verdict["ok"], verdict["why"]


def test_the_retraining_bands_were_measured_over_seeds_and_cpu_kinds_and_hold_the_committed_weights():
    """Each model's band comes from at least five draws over three seeds and at least two
    CPU kinds, one of them the committed weights themselves (their ``seed`` on their
    ``trained_on`` kind, with their fingerprint); the committed seed has a fingerprinted
    draw on every other kind; every draw passes the band, and the bound follows its rule."""
    from gsi.toy.quality_band import band_of, fingerprint, passes

    for which in ("prm", "small", "big"):
        meta = json.loads((ASSETS / which / "train_meta.json").read_text())
        band, seed, own = meta["retrain_band"], meta["seed"], meta["trained_on"]["cpu_capability"]
        draws = band["draws"]
        kinds = {d["kind"] for d in draws}
        assert len(draws) >= 5 and len({d["seed"] for d in draws}) >= 3 and len(kinds) >= 2, which
        mine = [d for d in draws if d["seed"] == seed and d["kind"] == own]
        assert len(mine) == 1 and mine[0]["fingerprint"] == fingerprint(ASSETS / which), which
        assert all(any(d["seed"] == seed and d["kind"] == k and d.get("fingerprint") for d in draws) for k in kinds)
        assert band_of(which, draws)["bound"] == band["bound"], which
        assert all(passes(which, d["value"], band) for d in draws), which


def test_the_prm_backbone_starts_as_the_big_lm(tmp_path):
    """copy_lm_backbone maps the Llama weights onto the Qwen2 PRM: on text whose PRM
    tokens are single characters (digits and operators) the two backbones' hidden states
    agree; the PRM's embedding of a merged token is the mean of its characters'."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gsi.toy.prm_tokenizer import build_prm_tokenizer
    from gsi.toy.train_prm import PRMSpec, build_model, copy_lm_backbone

    build_prm_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    prm = build_model(PRMSpec(hidden=128, layers=6, heads=4, intermediate=384, init_from="big"), len(tok), tok, seed=0)
    copy_lm_backbone(prm, tok, ASSETS / "big")
    lm = AutoModelForCausalLM.from_pretrained(ASSETS / "big")
    lm_tok = AutoTokenizer.from_pretrained(ASSETS / "big")
    text = "47+8=55*6=330-9=321"
    prm_ids = tok.encode(text, add_special_tokens=False)
    lm_ids = lm_tok.encode(text, add_special_tokens=False)
    assert len(prm_ids) == len(lm_ids) == len(text)
    with torch.inference_mode():
        a = prm.model(input_ids=torch.tensor([prm_ids])).last_hidden_state
        b = lm.model(input_ids=torch.tensor([lm_ids])).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5)
    merged = next(i for t, i in tok.get_vocab().items() if len(tok.decode([i])) == 4 and tok.decode([i]).isalpha())
    chars = [lm_tok.get_vocab()[c] for c in tok.decode([merged])]
    assert torch.allclose(prm.model.embed_tokens.weight[merged], lm.model.embed_tokens.weight[chars].mean(0))


def test_the_character_level_prm_tokenizer_reads_question_and_steps_as_the_toy_lm_does(tmp_path):
    """``build_prm_tokenizer(chars=True)``: every character of the question and the steps
    is one token, as for the toy LMs; the step tag and ``\\boxed`` are single tokens."""
    from transformers import AutoTokenizer

    from gsi.toy.prm_tokenizer import build_prm_tokenizer

    build_prm_tokenizer(tmp_path, chars=True)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    p = parse_prompt(Q)
    text = tok.apply_chat_template(qwen_prm_messages(Q, p.solution_steps()), tokenize=False)
    pieces = [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]
    question = pieces.index("user") + 2
    assert "".join(pieces[question : question + len(Q.strip())]) == Q.strip()
    answer = pieces[pieces.index("assistant") + 2 : -2]
    assert answer.count(QWEN_STEP_TAG) == len(p.solution_steps()) and "\\boxed" in answer
    assert all(len(t) == 1 for t in answer if t not in (QWEN_STEP_TAG, "\\boxed"))


def test_the_probe_copies_the_big_lm_onto_the_character_level_prm_tokenizer(tmp_path):
    """On characters both read alike, the probe's copy of the big LM predicts as the LM does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gsi.toy.prm_probe import lm_in_prm_format
    from gsi.toy.prm_tokenizer import build_prm_tokenizer

    build_prm_tokenizer(tmp_path, chars=True)
    tok, lm_tok = AutoTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(ASSETS / "big")
    copy, lm = lm_in_prm_format(tok).eval(), AutoModelForCausalLM.from_pretrained(ASSETS / "big").eval()
    text = "47+8=55*6=330-9=321"
    ids, lm_ids = tok.encode(text, add_special_tokens=False), lm_tok.encode(text, add_special_tokens=False)
    with torch.inference_mode():
        a = copy(input_ids=torch.tensor([ids])).logits[0][:, ids]
        b = lm(input_ids=torch.tensor([lm_ids])).logits[0][:, lm_ids]
    assert torch.allclose(a, b, atol=1e-4)
