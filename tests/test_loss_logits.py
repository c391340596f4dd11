"""`selfspec.loss_logits_only`: the output layer sees only the positions the loss reads, and the loss and the
gradients are those of the unpatched model (random tiny models built in memory: a Llama, and a Gemma-3 with its
logit soft-capping, under a PEFT LoRA adapter as Axolotl trains them)."""

import inspect

import pytest
import torch

from selfspec_plugin.loss_logits import IGNORE_INDEX, keep_loss_logits_only, next_token_targets


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


def gemma():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=128, sliding_window=8,
        final_logit_softcapping=30.0,
    )  # fmt: skip
    return Gemma3ForCausalLM(cfg)


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    for name, p in peft.named_parameters():  # B is zero at init: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return peft


def batch():
    """Two right-padded rows, the loss on each row's answer only (train_on_inputs: false)."""
    torch.manual_seed(2)
    ids = torch.randint(3, 512, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    labels = ids.clone()
    labels[0, :15] = IGNORE_INDEX  # prompt
    labels[1, :9] = IGNORE_INDEX
    labels[1, 17:] = IGNORE_INDEX  # padding
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_and_grads(model, inputs):
    model.train()
    model.zero_grad()
    out = model(**inputs, num_items_in_batch=torch.tensor(int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())))
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out, grads


@pytest.mark.parametrize("build", [llama, gemma], ids=["llama", "gemma3-softcap"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_the_loss_and_its_gradients_are_unchanged_with_fewer_logits(build, lora):
    inputs = batch()
    plain = with_lora(build()) if lora else build()
    patched = with_lora(build()) if lora else build()
    assert keep_loss_logits_only(patched)
    # HF's Trainer keeps the dataset columns the forward's signature names (the base model's, under PEFT)
    unwrap = (lambda m: m.get_base_model()) if lora else (lambda m: m)
    assert inspect.signature(unwrap(patched).forward) == inspect.signature(unwrap(plain).forward)
    before, grads_before = loss_and_grads(plain, inputs)
    after, grads_after = loss_and_grads(patched, inputs)
    trained = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert before.logits.shape == (2, 24, 512) and after.logits.shape == (trained, 512)  # 7 + 7 rows, not 48
    torch.testing.assert_close(after.loss, before.loss, rtol=1e-5, atol=1e-6)
    assert grads_after.keys() == grads_before.keys() and len(grads_after) > 0
    for name, grad in grads_before.items():
        torch.testing.assert_close(grads_after[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # outside a training forward with labels, the model is the model: full logits, same values
    patched.eval()
    plain.eval()
    with torch.no_grad():
        full = patched(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        assert full.shape == (2, 24, 512)
        torch.testing.assert_close(
            full, plain(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        )
        evaluated = patched(**inputs)  # eval mode, labels given: the model's own path
        assert evaluated.logits.shape == (2, 24, 512)
        torch.testing.assert_close(evaluated.loss, plain(**inputs).loss, rtol=1e-5, atol=1e-6)


def test_a_wrong_shift_would_be_caught():
    """The targets are the next position's labels: row r's position t is trained on labels[r, t + 1]."""
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 5, 6], [IGNORE_INDEX, 7, IGNORE_INDEX, IGNORE_INDEX]])
    targets, rows = next_token_targets(labels)
    assert targets.tolist() == [[IGNORE_INDEX, 5, 6, IGNORE_INDEX], [7, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    assert rows.tolist() == [[False, True, True, False], [True, False, False, False]]


def test_a_model_without_the_structure_is_left_alone():
    class NotACausalLM(torch.nn.Module):
        def forward(self, x):
            return x

    model = NotACausalLM()
    assert not keep_loss_logits_only(model) and "forward" not in vars(model)
