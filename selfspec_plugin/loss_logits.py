"""Logits only where the loss reads them (`selfspec.loss_logits_only`).

A causal LM's training forward projects the hidden state of every position onto the vocabulary, and the loss then
reads only the positions whose next token is trained on: with `train_on_inputs: false` the answers, never the
prompt or the padding. When the vocabulary is most of the model (Gemma-3-270M: 168 M of its 268 M parameters are
the 262 K-token output layer) that projection, its float32 cross-entropy and their backward are most of a step.
Patched, the output layer sees only the positions the loss reads; the loss is the same cross-entropy over the
same tokens (the same sum, divided by the same count), so the gradients are the same up to float rounding.
"""

from __future__ import annotations

import functools
import inspect

IGNORE_INDEX = -100  # transformers' and Axolotl's label for a token not trained on


def next_token_targets(labels):
    """Each position's target, the next position's label (IGNORE_INDEX after the last), and where one is trained on:
    the shift transformers' causal-LM loss makes."""
    import torch.nn.functional as F

    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    return targets, targets != IGNORE_INDEX


def keep_loss_logits_only(model) -> bool:
    """Patch the causal LM inside `model` (a PEFT model's base model, or the model itself): a training forward given
    `labels` runs the output layer on the positions the loss reads only, and the loss on those. Anything else (eval,
    generation, a caller's own `logits_to_keep`) runs as before. Returns False, leaving the model alone, when it
    lacks what this relies on: an output layer and a forward taking `logits_to_keep` and computing its loss with
    `loss_function` (transformers' causal LMs)."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    forward = lm.forward
    if head is None or "logits_to_keep" not in inspect.signature(forward).parameters:
        return False
    try:  # the loss must come from `loss_function`, which is what is swapped below
        if "loss_function" not in inspect.getsource(type(lm).forward):
            return False
    except (OSError, TypeError):  # no source to read: do not guess
        return False
    step: dict = {}  # the current forward's rows and targets, set only while it runs
    own_loss = lm.loss_function

    def rows_only(module, args):
        if "rows" not in step:
            return None
        hidden, *rest = args
        return (hidden[step["rows"]], *rest)  # (batch, positions, hidden) -> (rows the loss reads, hidden)

    def loss_function(logits, labels, vocab_size, **kwargs):
        if "targets" not in step:
            return own_loss(logits, labels, vocab_size, **kwargs)
        return ForCausalLMLoss(logits, None, vocab_size, shift_labels=step["targets"], **kwargs)

    @functools.wraps(forward)  # its signature stays the model's: the Trainer keeps the dataset columns it names
    def patched(*args, labels=None, **kwargs):
        if labels is None or not lm.training or kwargs.get("logits_to_keep", 0) != 0:
            return forward(*args, labels=labels, **kwargs)
        targets, rows = next_token_targets(labels)
        step.update(rows=rows, targets=targets[rows])
        try:
            return forward(*args, labels=labels, **kwargs)
        finally:
            step.clear()

    head.register_forward_pre_hook(rows_only)
    lm.loss_function = loss_function
    lm.forward = patched
    return True
