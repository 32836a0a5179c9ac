"""``Qwen2ForProcessRewardModel`` on plain ``transformers``: no remote code needed.

A Qwen2 backbone (``model.*``) and a token-level head ``score`` = Linear(h, h) -> ReLU
-> Linear(h, 2), with the weight names of the Qwen2.5-Math-PRM checkpoints and of
vLLM's ``qwen2_rm.py``, so ``from_pretrained`` loads the real ``Qwen/Qwen2.5-Math-PRM-7B``
folder (sharded or not) as well as the tiny toy PRM. Imports torch: import lazily.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel

NUM_LABELS = 2
ARCHITECTURE = "Qwen2ForProcessRewardModel"


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    """``forward`` returns 2-class logits for every token, shape (batch, seq, 2)."""

    config_class = Qwen2Config
    # The real checkpoints may carry an unused LM head; it is not part of this model.
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.model = Qwen2Model(config)
        h = config.hidden_size
        self.score = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, NUM_LABELS))
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.score(hidden)
