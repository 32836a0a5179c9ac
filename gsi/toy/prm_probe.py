"""Diagnostic for the toy PRM (issue #18): does a copy of the big LM still compute the
steps when it reads the PRM's conversation format?

    python -m gsi.toy.prm_probe                 # char-level PRM tokenizer, 150 warm-up steps
    python -m gsi.toy.prm_probe --steps 0       # the copy as it is, no warm-up

The big LM's weights go into a ``Qwen2ForCausalLM`` that reads the PRM tokenizer's ids
(each PRM token's embedding and output row is the LM's for the same character;
``<extra_0>`` is the LM's blank line, ``\\boxed`` its ``\\boxed{``, the chat tokens its
``<bos>``); it is then trained as a causal LM on PRM conversations of right solutions
(``lm_batch``), and the probe is the AUC with which its likelihood of the last step
tells the right step from the listed wrong ones on held-out problems (the PRM's own
held-out test, :func:`gsi.toy.evaluate.heldout_auc`, scored by likelihood).

Measured (1 thread, default world, 60-100 problems; the big LM in its own format:
0.9997; items 2-4 partly in scratch runs whose chat tokens stood in a little differently,
0.99 after the same warm-up):

* BPE tokenizer (mean-of-characters embeddings, as ``copy_lm_backbone`` does): 0.52.
  Even with the LM's own characters, a one-token-per-word question gives 0.70 and a
  system turn before the LM's prompt 0.62: the toy LM only computes in its exact format.
* character-level tokenizer (``python -m gsi.toy.prm_probe``, 4.5 min): 0.55 before the
  warm-up, 0.85 / 0.94 / 0.97 after 50 / 100 / 150 steps (lr 3e-4, batch 32). The warmed
  copy's smallest token log-probability in the last step gives 0.99 (over the whole
  answer 0.97): a PRM that reads it off would be the judge #18 asks for.
* But the token a position holds is not linearly decodable from the LM's last hidden
  state (least squares on answer tokens: 1.0 after the embedding, 0.99 / 0.75 / 0.66 /
  0.53 after layers 1-4): layers stacked on top cannot compare the LM's prediction with
  the token that follows it, which is why PRMs started from the big LM stayed at the
  class prior (also two extra layers on the warmed copy: AUC 0.53 after 300 steps; and
  a 160-wide model, the copy in 128 dimensions beside an untouched 32-dimensional
  token-identity stream read by a fifth head: 0.54 after 400 steps).
* Hand-set extra layers on that wide model (a previous-token head from q/k biases alone
  fetching the centred logits of 15 answer tokens, a gated MLP comparing them with the
  token, a soft minimum over the answer) reach only 0.56: a centred logit above a
  threshold is a poor stand-in for the log-probability (its minimum over the answer
  gives 0.76).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from gsi.rewards.prm_format import QWEN_STEP_TAG, qwen_prm_messages
from gsi.toy.evaluate import WORLDS, auc
from gsi.toy.fit import fit, optimizer
from gsi.toy.prm_data import lm_batch, wrong_steps
from gsi.toy.task import generate_problems, training_problem

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
# PRM tokens that are not characters of the toy LM, and the LM token standing in for each
STAND_INS = {QWEN_STEP_TAG: "\n\n", "\\boxed": "\\boxed{"}


def lm_in_prm_format(prm_tok, lm_dir: Path = ASSETS / "big"):
    """The toy LM in ``lm_dir`` as a ``Qwen2ForCausalLM`` over the PRM tokenizer's ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    vocab, emb = AutoTokenizer.from_pretrained(lm_dir).get_vocab(), lm.model.embed_tokens.weight.detach()
    c = lm.config
    config = Qwen2Config(vocab_size=len(prm_tok), hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                         num_key_value_heads=c.num_key_value_heads, max_position_embeddings=512,
                         rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=False, pad_token_id=prm_tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    state = {k: v for k, v in lm.model.state_dict().items() if k != "embed_tokens.weight"}
    model.model.load_state_dict(state, strict=False)
    with torch.no_grad():
        for name, module in model.model.named_modules():
            if name.endswith(("q_proj", "k_proj", "v_proj")):
                module.bias.zero_()
        rows = torch.zeros(len(prm_tok), c.hidden_size)
        for token_id in range(len(prm_tok)):
            text = prm_tok.decode([token_id])
            rows[token_id] = emb[vocab.get(STAND_INS.get(text, text), vocab["<bos>"])]
        model.model.embed_tokens.weight.copy_(rows)
        model.lm_head.weight.copy_(rows)
    return model


def step_likelihood_auc(model, prm_tok, count: int = 60, seed: int = 99, world: str = "default") -> float:
    """Held-out AUC of the causal LM's log-likelihood of the last step, in the PRM format."""
    import torch

    tag, start_id = prm_tok.convert_tokens_to_ids(QWEN_STEP_TAG), prm_tok.convert_tokens_to_ids("assistant")
    rng = np.random.default_rng(seed)
    pos, neg = [], []
    model.eval()
    for p in generate_problems(count, seed, True, **WORLDS[world]):
        ref = p.solution_steps()
        index = int(rng.integers(0, len(ref)))
        scores = []
        for step in [ref[index], *wrong_steps(p, index)]:
            text = prm_tok.apply_chat_template(qwen_prm_messages(p.prompt, ref[:index] + [step]), tokenize=False)
            ids = prm_tok(text, add_special_tokens=False)["input_ids"]
            tags = [j for j, t in enumerate(ids) if t == tag]
            first = tags[index - 1] + 1 if index else ids.index(start_id) + 2
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
            scores.append(sum(float(logp[j - 1, ids[j]]) for j in range(first, tags[index] + 1)))
        pos.append(scores[0])
        neg += scores[1:]
    model.train()
    return round(auc(pos, neg), 4)


def probe(steps: int = 150, lr: float = 3e-4, batch: int = 32, chars: bool = True, seed: int = 1,
          every: int = 50, lm_dir: Path = ASSETS / "big") -> dict[int, float]:
    """Step-likelihood AUC of the big LM's copy before and during its warm-up."""
    import torch
    from transformers import AutoTokenizer

    from gsi.toy.prm_tokenizer import build_prm_tokenizer

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as folder:
        build_prm_tokenizer(Path(folder), chars=chars)
        tok = AutoTokenizer.from_pretrained(folder)
    model = lm_in_prm_format(tok, lm_dir)
    found = {0: step_likelihood_auc(model, tok)}
    log.info("before warm-up: step-likelihood AUC %s", found[0])
    if steps:
        rng = np.random.default_rng(seed)
        opt, sched = optimizer(model, lr, 20, steps)

        def step_loss():
            ids, mask, labels = lm_batch(rng, tok, batch, training_problem)
            return model(input_ids=ids, attention_mask=mask, labels=labels).loss

        def check(done: int, loss: float) -> None:
            if done % every == 0 or done == steps:
                found[done] = step_likelihood_auc(model, tok)
                log.info("warm-up step %d (loss %.4f): step-likelihood AUC %s", done, loss, found[done])

        fit(model, opt, sched, steps, step_loss, "warm-up", None, check)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="causal-LM warm-up steps (0: none)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--bpe", action="store_true", help="the BPE tokenizer instead of the character-level one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(probe(args.steps, args.lr, chars=not args.bpe))


if __name__ == "__main__":
    main()
