"""Hidden tests, week 5 (finetuning). 43 points.

Every classification test runs the student's functions on the kit's trusted GPT (``parts/gpt.py``) holding
the reference's weights, never on the student's pasted week-3 model, and builds its inputs with the
reference or the kit's stand-ins (``parts/finetuning.py``), so a bug costs points only in the exercise
where it lives. Inputs come from small hypothesis draws (sizes, a seed, a scale); the reference runs in
float64 on the same float32 inputs. Tolerances are ``f32_tol(scale)`` (``autograder/compare.py``) with the
scale written next to each test; integer outputs and strings must match exactly.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import assert_close, expect_tensor, f32_tol, graded
from autograder.proxy import StudentAbort
from autograder.sandbox.supervisor import WorkerDied
from reference import finetuning as ref
from reference import gpt

torch.set_num_threads(1)

points = pytest.mark.points
exercise = pytest.mark.exercise
DATA = Path(__file__).resolve().parents[3] / "assignments" / "w05_finetuning" / "data"
seeds = st.integers(0, 2**31 - 1)


@pytest.fixture(autouse=True)
def clean_worker(student):
    """Grad mode on and float32 by default before every test: a function that switched them off and left
    them so (``torch.set_grad_enabled(False)`` at the top of an accuracy loop) must not fail the gradient
    checks of other exercises. Best effort: if the worker cannot be reached, the test itself says why."""
    try:
        student.part("restore_defaults")
    except (RuntimeError, WorkerDied):
        pass


def randn(shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g) * scale).to(torch.float32)


def _where(wrong: torch.Tensor) -> str:
    return ", ".join(str(int(i)) for i in wrong.nonzero()[0])


def assert_equal_ids(got, expected: torch.Tensor, what: str) -> None:
    """Integer tensors must match exactly: shape, dtype int64, every entry."""
    got = expect_tensor(got, what, shape=expected.shape, dtype=torch.int64)
    wrong = got != expected
    if wrong.any():
        raise AssertionError(f"{what} is wrong at {int(wrong.sum())} of {got.numel()} positions "
                             f"(first at [{_where(wrong)}], where you have {int(got[wrong][0])})")


# ------------------------------------------------------------------------------------------- models
gpt_sizes = st.fixed_dictionaries({"vocab_size": st.integers(3, 30), "context_length": st.integers(2, 9),
                                   "n_heads": st.integers(1, 3), "head_dim": st.integers(2, 4),
                                   "n_layers": st.integers(1, 3), "qkv_bias": st.booleans()})


def gpt_config(c: dict) -> dict:
    c = dict(c)
    c["emb_dim"] = c["n_heads"] * c.pop("head_dim")
    return c | {"drop_rate": 0.0}


def reference_classifier(cfg: dict, num_classes: int, seed: int) -> torch.nn.Module:
    """The reference GPT with the reference classification head, in float64 and eval mode."""
    torch.manual_seed(seed)
    model = ref.prepare_for_classification(gpt.GPTModel(cfg), num_classes)
    return model.double().eval()


def trusted_model(student, cfg: dict, reference: torch.nn.Module, num_classes: int | None = None):
    """The kit's GPT in the worker holding ``reference``'s weights (with a classification head of
    ``num_classes`` outputs, prepared by the kit, when given), in eval mode."""
    model = student.part("GPTModel", cfg)
    if num_classes is not None:
        student.part("prepare_for_classification", model, num_classes)
    model.load_parameters({n: p.detach().float() for n, p in reference.named_parameters()})
    model.method("eval")()
    return model


def expected_trainable(cfg: dict) -> set[str]:
    last = f"trf_blocks.{cfg['n_layers'] - 1}."
    block = {n for n, _ in gpt.TransformerBlock(cfg).named_parameters()}
    return {last + n for n in block} | {"final_norm.scale", "final_norm.shift", "out_head.weight", "out_head.bias"}


def _names(names) -> str:
    names = sorted(names)
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def prepared(student, model, num_classes: int):
    out = student.prepare_for_classification(model, num_classes)
    if out is None:
        raise AssertionError("prepare_for_classification returned None: return the model")
    if not hasattr(out, "method"):
        raise AssertionError(f"prepare_for_classification returned a {type(out).__name__}, not the model")
    return out


def check_trainable(student, model, cfg: dict) -> None:
    trainable = set(student.part("trainable_names", model))
    want = expected_trainable(cfg)
    if trainable - want:
        raise AssertionError(f"these parameters should be frozen (requires_grad=False) but train: "
                             f"{_names(trainable - want)}")
    if want - trainable:
        raise AssertionError(f"these parameters should train (requires_grad=True) but are frozen or missing: "
                             f"{_names(want - trainable)}")


# ------------------------------------------------------------------------------ prepare_for_classification
@points(1)
@exercise("prepare_for_classification")
@graded(max_examples=6)
@given(c=gpt_sizes, num_classes=st.integers(2, 5), seed=seeds)
def test_prepare_replaces_the_head(student, c, num_classes, seed):
    """out_head becomes nn.Linear(emb_dim, num_classes) with a bias, and the model is returned"""
    cfg = gpt_config(c)
    torch.manual_seed(seed % 10_000)
    model = trusted_model(student, cfg, gpt.GPTModel(cfg))
    params = student.part("parameters", prepared(student, model, num_classes))
    weight, bias = params.get("out_head.weight"), params.get("out_head.bias")
    if weight is None:
        raise AssertionError("the model has no out_head.weight after prepare_for_classification")
    expect_tensor(weight, "out_head.weight", shape=(num_classes, cfg["emb_dim"]), floating=True)
    if bias is None:
        raise AssertionError("out_head has no bias: use nn.Linear(emb_dim, num_classes), bias included")
    expect_tensor(bias, "out_head.bias", shape=(num_classes,), floating=True)


@points(2)
@exercise("prepare_for_classification")
@graded(max_examples=8)
@given(c=gpt_sizes, num_classes=st.integers(2, 5), seed=seeds)
def test_prepare_freezes_all_but_the_last_block_norm_and_head(student, c, num_classes, seed):
    """exactly the last transformer block, final_norm and out_head have requires_grad=True"""
    cfg = gpt_config(c)
    torch.manual_seed(seed % 10_000)
    model = trusted_model(student, cfg, gpt.GPTModel(cfg))
    check_trainable(student, prepared(student, model, num_classes), cfg)


@points(1)
@exercise("prepare_for_classification")
@graded(max_examples=5)
@given(c=gpt_sizes, num_classes=st.integers(2, 5), seed=seeds)
def test_prepare_keeps_the_pretrained_weights(student, c, num_classes, seed):
    """every parameter outside the new head keeps its pretrained value (exact)"""
    cfg = gpt_config(c)
    torch.manual_seed(seed % 10_000)
    reference = gpt.GPTModel(cfg)
    model = trusted_model(student, cfg, reference)
    after = student.part("parameters", prepared(student, model, num_classes))
    for name, p in reference.named_parameters():
        if name.startswith("out_head."):
            continue
        if name not in after:
            raise AssertionError(f"{name} is gone after prepare_for_classification")
        if not torch.equal(after[name], p.detach().float()):
            raise AssertionError(f"{name} changed in prepare_for_classification: only the head is new")


@lru_cache(maxsize=1)
def shipped() -> tuple:
    """The base model and the review set that ship with the notebook, padded as the notebook pads them:
    UTF-8 bytes, then the end-of-text id on the left, up to the longest review of the whole set."""
    state = {k: v.float() for k, v in torch.load(DATA / "base_model.pt", weights_only=True).items()}
    rows = [json.loads(line) for line in (DATA / "reviews.jsonl").read_text().splitlines()]
    width = max(len(ref.encode(r["text"])) for r in rows)

    def tensors(split):
        chosen = [r for r in rows if r["split"] == split]
        ids = torch.full((len(chosen), width), ref.EOT_ID, dtype=torch.long)
        for i, r in enumerate(chosen):
            encoded = ref.encode(r["text"])
            ids[i, width - len(encoded):] = torch.tensor(encoded)
        return ids, torch.tensor([r["label"] for r in chosen])

    return state, tensors("train"), tensors("test")


BASE_CONFIG = {"vocab_size": 257, "context_length": 192, "emb_dim": 96, "n_heads": 4, "n_layers": 4,
               "drop_rate": 0.0, "qkv_bias": False}
# Stated in the notebook. The reference reaches 0.855 with these settings; a prepared model whose trainable
# parameters are wrong stays far below or changes frozen weights.
STEPS, BATCH_SIZE, LR, MIN_ACCURACY = 100, 8, 2e-3, 0.75


def batch_schedule(n: int) -> list[list[int]]:
    """Seeded shuffled batches of row indices, epoch after epoch (the same for every submission)."""
    g, out = torch.Generator().manual_seed(0), []
    while len(out) < STEPS:
        order = torch.randperm(n, generator=g).tolist()
        out += [order[i:i + BATCH_SIZE] for i in range(0, n - BATCH_SIZE + 1, BATCH_SIZE)]
    return out[:STEPS]


@points(2)
@exercise("prepare_for_classification")
def test_prepare_finetunes_the_base_model_end_to_end(student):
    """the shipped base model, prepared by you and finetuned for 100 seeded steps on the review set (batch 8,
    AdamW, learning rate 2e-3, head redrawn from a fixed seed), classifies the test reviews with accuracy
    >= 0.75, and only the last block, final_norm and out_head changed"""
    state, (train_x, train_y), (test_x, test_y) = shipped()
    model = student.part("GPTModel", BASE_CONFIG)
    model.load_parameters(state)
    model.method("eval")()
    model = prepared(student, model, 2)
    schedule = batch_schedule(len(train_y))
    try:  # the model now holds the student's head: what it runs is the student's code
        student.part("reset_head", model, 0)
        optimizer = student.part("classifier_optimizer", model, LR)
        for start in range(0, STEPS, 20):  # several short calls, each far below the time limit
            student.part("finetune_classifier", model, optimizer, train_x, train_y, schedule[start:start + 20])
        after = student.part("parameters", model)
    except (RuntimeError, WorkerDied) as exc:
        message = exc.reason if isinstance(exc, WorkerDied) else str(exc).replace("the kit's ", "")
        raise StudentAbort(f"finetuning the model you prepared failed: {message}") from None
    trainable = expected_trainable(BASE_CONFIG)
    changed = {n for n, v in state.items() if n not in trainable and n in after and not torch.equal(after[n], v)}
    if changed:
        raise AssertionError(f"finetuning changed parameters that should stay frozen: {_names(changed)}")
    # Accuracy measured here, with the reference model holding the finetuned weights: nothing the
    # worker reports about its own predictions is trusted for the score.
    judge = ref.prepare_for_classification(gpt.GPTModel(BASE_CONFIG), 2)
    missing = {n for n, _ in judge.named_parameters()} - set(after)
    if missing:
        raise AssertionError(f"the prepared model has no {_names(missing)}")
    judge.load_state_dict({n: after[n] for n, _ in judge.named_parameters()}, strict=False)
    judge.eval()
    accuracy = ref.classification_accuracy(judge, [(test_x, test_y)])
    if accuracy < MIN_ACCURACY:
        raise AssertionError(f"after finetuning, test accuracy is {accuracy:.3f}, below {MIN_ACCURACY}")


# ------------------------------------------------------------------------------------- classification_logits
def logits_tol(expected: torch.Tensor, n_layers: int) -> float:
    """Scale: the size of the logits times the depth (float32 rounding grows through the blocks)."""
    return f32_tol(64 * n_layers * (1.0 + float(expected.abs().max())))


@points(3)
@exercise("classification_logits")
@graded(max_examples=15)
@given(c=gpt_sizes, num_classes=st.integers(2, 5), batch=st.integers(1, 4), seed=seeds, data=st.data())
def test_logits_match_reference(student, c, num_classes, batch, seed, data):
    """the logits at the last position, (B, num_classes), equal the reference on the kit's model
    (tolerance f32_tol(64 * n_layers * (1 + max |logit|)))"""
    cfg = gpt_config(c)
    T = data.draw(st.integers(2, cfg["context_length"]), label="T")
    reference = reference_classifier(cfg, num_classes, seed % 10_000)
    model = trusted_model(student, cfg, reference, num_classes)
    x = torch.randint(0, cfg["vocab_size"], (batch, T), generator=torch.Generator().manual_seed(seed))
    out = student.classification_logits(model, x)
    expect_tensor(out, "classification_logits(model, input_ids)", shape=(batch, num_classes), floating=True)
    with torch.no_grad():
        expected = ref.classification_logits(reference, x)
    assert_close(out, expected, atol=logits_tol(expected, cfg["n_layers"]), what="classification logits")


@points(2)
@exercise("classification_logits")
@graded(max_examples=6)
@given(c=gpt_sizes, num_classes=st.integers(2, 5), batch=st.integers(1, 3), seed=seeds, data=st.data())
def test_logits_keep_the_graph_for_training(student, c, num_classes, batch, seed, data):
    """gradients flow from the logits back to the trainable weights and equal the reference's
    (tolerance f32_tol(1000 * n_layers * (1 + max |gradient|)))"""
    cfg = gpt_config(c)
    T = data.draw(st.integers(2, cfg["context_length"]), label="T")
    reference = reference_classifier(cfg, num_classes, seed % 10_000)
    model = trusted_model(student, cfg, reference, num_classes)
    x = torch.randint(0, cfg["vocab_size"], (batch, T), generator=torch.Generator().manual_seed(seed))
    cot = randn((batch, num_classes), seed + 1)
    student.part("zero_grads", model)
    student.classification_logits.vjp(model, x, cotangent=cot)
    grads = student.part("gradients", model)
    (ref.classification_logits(reference, x) * cot.double()).sum().backward()
    for name, p in reference.named_parameters():
        if not p.requires_grad:
            continue
        if grads.get(name) is None:
            raise AssertionError(f"no gradient reached {name}: are the logits computed under torch.no_grad(), "
                                 "or detached?")
        tol = f32_tol(1000 * cfg["n_layers"] * (1.0 + float(p.grad.abs().max())))
        assert_close(grads[name], p.grad, atol=tol, what=f"gradient of {name}")


# ------------------------------------------------------------------------------------- classification_accuracy
@st.composite
def loaders(draw):
    """A list of (input_ids, labels) batches with ragged sizes (the last batch often smaller)."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4), label="batch sizes")
    lengths = draw(st.lists(st.integers(1, 6), min_size=len(sizes), max_size=len(sizes)), label="lengths")
    return list(zip(sizes, lengths))


def make_loader(student, model, shape, vocab: int, num_classes: int, seed: int, hit_rate: float):
    """Batches whose labels agree with the kit's own predictions with probability ``hit_rate``."""
    g = torch.Generator().manual_seed(seed)
    loader = []
    for size, length in shape:
        x = torch.randint(0, vocab, (size, length), generator=g)
        predicted = student.part("classification_logits", model, x).argmax(-1)
        other = (predicted + torch.randint(1, num_classes, (size,), generator=g)) % num_classes
        labels = torch.where(torch.rand(size, generator=g) < hit_rate, predicted, other)
        loader.append((x, labels))
    return loader


class _Replay(torch.nn.Module):
    """Hands the reference accuracy the worker's own float32 logits, batch after batch, so an argmax near a
    tie cannot round differently here and there."""

    def __init__(self, logits: list):
        super().__init__()
        self.pending = list(logits)

    def forward(self, x):
        return self.pending.pop(0).unsqueeze(1)  # (B, 1, C): its last position is the logits


def expected_accuracy(student, model, loader) -> float:
    logits = [student.part("classification_logits", model, x) for x, _ in loader]
    return ref.classification_accuracy(_Replay(logits), loader)


def as_number(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AssertionError(f"{what} should be a number (a Python float), got {type(value).__name__}")
    return float(value)


@points(3)
@exercise("classification_accuracy")
@graded(max_examples=12)
@given(c=gpt_sizes, num_classes=st.integers(2, 4), shape=loaders(), seed=seeds,
       hit_rate=st.sampled_from([0.3, 0.5, 0.8]))
def test_accuracy_matches_reference(student, c, num_classes, shape, seed, hit_rate):
    """the fraction of correct argmax predictions over all examples of all batches (ragged batch sizes),
    as a number in [0, 1] (tolerance 1e-6)"""
    cfg = gpt_config(c) | {"context_length": 6}
    reference = reference_classifier(cfg, num_classes, seed % 10_000)
    model = trusted_model(student, cfg, reference, num_classes)
    loader = make_loader(student, model, shape, cfg["vocab_size"], num_classes, seed, hit_rate)
    got = as_number(student.classification_accuracy.using("classification_logits")(model, loader),
                    "classification_accuracy(model, loader)")
    want = expected_accuracy(student, model, loader)
    if abs(got - want) > 1e-6:
        raise AssertionError(f"classification_accuracy returned {got:.4f}; expected a different fraction of the "
                             f"{sum(len(y) for _, y in loader)} examples in {len(loader)} batches of sizes "
                             f"{[len(y) for _, y in loader]} (count correct examples, not batches)")


@points(1)
@exercise("classification_accuracy")
def test_accuracy_of_all_right_and_all_wrong(student):
    """labels equal to the predictions give 1.0, labels that never are give 0.0 (tolerance 1e-6)"""
    cfg = gpt_config({"vocab_size": 9, "context_length": 6, "n_heads": 2, "head_dim": 2, "n_layers": 1,
                      "qkv_bias": False})
    model = trusted_model(student, cfg, reference_classifier(cfg, 3, 5), 3)
    for hit_rate, want in ((1.0, 1.0), (0.0, 0.0)):
        loader = make_loader(student, model, [(5, 4), (5, 4), (2, 4)], 9, 3, 17, hit_rate)
        got = as_number(student.classification_accuracy.using("classification_logits")(model, loader),
                        "classification_accuracy(model, loader)")
        if abs(got - want) > 1e-6:
            raise AssertionError(f"every label is {'right' if want else 'wrong'}, so the accuracy is {want:.1f}; "
                                 f"got {got:.4f}")


# ------------------------------------------------------------------------------------------ format_instruction
# An explicit alphabet (hypothesis' full unicode tables cost seconds to build in every grading run): letters,
# digits, punctuation, spaces, newlines and tabs, template-like characters, and some non-ASCII.
ALPHABET = "abcXYZ019 .,:;!?'\"()-#\n\t\r\\éßøç中文😀"
texts = st.text(alphabet=ALPHABET, min_size=1, max_size=30)


def assert_same_text(got, expected: str, what: str) -> None:
    if not isinstance(got, str):
        raise AssertionError(f"{what} should return a str, got {type(got).__name__}")
    if got == expected:
        return
    i = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    raise AssertionError(f"{what} differs from the template at character {i} (your text there: "
                         f"{got[max(0, i - 15):i + 15]!r}; yours has {len(got)} characters). Compare it with the "
                         "template in the notebook: headers, newlines and spaces count.")


@points(2)
@exercise("format_instruction")
@graded(max_examples=15)
@given(instruction=texts, input_text=texts, output=st.text(alphabet=ALPHABET, max_size=10))
def test_format_with_input(student, instruction, input_text, output):
    """an entry with a non-empty input: instruction, input and response sections exactly as the template (exact)"""
    entry = {"instruction": instruction, "input": input_text, "output": output}
    assert_same_text(student.format_instruction(entry), ref.format_instruction(entry), "format_instruction(entry)")


@points(2)
@exercise("format_instruction")
@graded(max_examples=10)
@given(instruction=texts, output=st.text(alphabet=ALPHABET, max_size=10))
def test_format_without_input(student, instruction, output):
    """an entry whose input is "" has no input section (exact)"""
    entry = {"instruction": instruction, "input": "", "output": output}
    assert_same_text(student.format_instruction(entry), ref.format_instruction(entry), "format_instruction(entry)")


# ---------------------------------------------------------------------------------------- collate_instructions
@st.composite
def batches(draw, min_len=1, max_len=10, empty_rows=False):
    """(batch, pad_token_id, ignore_index): token ids below ``vocab``, none equal to the pad id."""
    vocab = draw(st.integers(3, 300), label="vocab")
    pad = draw(st.integers(0, vocab - 1), label="pad_token_id")
    ignore = draw(st.sampled_from([-100, -1, -7]), label="ignore_index")
    lengths = draw(st.lists(st.integers(min_len, max_len), min_size=1, max_size=5), label="lengths")
    if empty_rows:
        lengths = lengths + [0] * draw(st.integers(1, 2), label="empty rows")
        lengths = draw(st.permutations(lengths), label="order")
    if max(lengths) == 0:
        lengths[0] = 1
    seed = draw(seeds, label="seed")
    g = torch.Generator().manual_seed(seed)
    batch = []
    for n in lengths:
        ids = torch.randint(0, vocab - 1, (n,), generator=g)
        batch.append([int(i) + (int(i) >= pad) for i in ids])  # skip the pad id
    return batch, pad, ignore


def check_collate(student, batch, pad, ignore, **kwargs) -> None:
    out = student.collate_instructions(batch, pad, ignore, **kwargs)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise AssertionError("collate_instructions should return a pair (inputs, targets)")
    inputs, targets = ref.collate_instructions(batch, pad, ignore, **kwargs)
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    assert_equal_ids(out[0], inputs, f"inputs{' (' + shown + ')' if shown else ''}")
    assert_equal_ids(out[1], targets, f"targets{' (' + shown + ')' if shown else ''}")


@points(3)
@exercise("collate_instructions")
@graded(max_examples=20)
@given(b=batches())
def test_collate_pads_shifts_and_masks_padding(student, b):
    """sequences of unequal length: padded with the end-of-text id to the longest plus one, targets shifted
    by one, the first padding target kept and the later ones ignore_index (exact)"""
    check_collate(student, *b)


@points(1)
@exercise("collate_instructions")
@graded(max_examples=10)
@given(b=batches(empty_rows=True))
def test_collate_all_padding_rows(student, b):
    """an empty sequence gives a row of padding whose first target is kept (exact)"""
    check_collate(student, *b)


@points(3)
@exercise("collate_instructions")
@graded(max_examples=20)
@given(b=batches(), data=st.data())
def test_collate_masks_the_prompt(student, b, data):
    """with prompt_lengths, targets that predict a prompt token are ignore_index and the first response token
    is kept; prompts may be as long as the whole sequence (exact)"""
    batch, pad, ignore = b
    prompts = [data.draw(st.integers(1, len(seq)), label="prompt length") for seq in batch]
    check_collate(student, batch, pad, ignore, prompt_lengths=prompts)


@points(1)
@exercise("collate_instructions")
@graded(max_examples=10)
@given(b=batches(empty_rows=True), data=st.data())
def test_collate_prompts_of_length_zero_and_one(student, b, data):
    """prompt lengths 0 and 1 mask nothing (an empty sequence has prompt length 0) (exact)"""
    batch, pad, ignore = b
    prompts = [0 if not seq else data.draw(st.integers(0, 1), label="prompt length") for seq in batch]
    check_collate(student, batch, pad, ignore, prompt_lengths=prompts)


@points(2)
@exercise("collate_instructions")
@graded(max_examples=20)
@given(b=batches(max_len=12), data=st.data())
def test_collate_truncates_last(student, b, data):
    """allowed_max_length keeps the first columns of inputs and targets, after padding and masking; limits
    just below, at and above the longest sequence (exact)"""
    batch, pad, ignore = b
    longest = max(len(seq) for seq in batch)
    limit = data.draw(st.sampled_from([1, max(longest - 1, 1), longest, longest + 1, max(longest // 2, 1)]),
                      label="allowed_max_length")
    prompts = None
    if data.draw(st.booleans(), label="with prompts"):
        prompts = [data.draw(st.integers(1, len(seq)), label="prompt length") for seq in batch]
    check_collate(student, batch, pad, ignore, allowed_max_length=limit, prompt_lengths=prompts)


# --------------------------------------------------------------------------------------------- sequence_logprob
logprob_shapes = st.fixed_dictionaries({"B": st.integers(1, 4), "T": st.integers(1, 8), "V": st.integers(2, 20)})


def logprob_inputs(s: dict, seed: int, scale: float, ignored_labels: bool):
    """logits, labels, and a bool mask with an all-False row now and then; labels outside the mask are
    -100 when ``ignored_labels`` (as the targets of collate_instructions are)."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(s["B"], s["T"], s["V"], generator=g) * scale).float()
    labels = torch.randint(0, s["V"], (s["B"], s["T"]), generator=g)
    mask = torch.rand(s["B"], s["T"], generator=g) < 0.6
    mask[torch.rand(s["B"], generator=g) < 0.25] = False  # rows with no response token at all
    if ignored_labels:
        labels = labels.masked_fill(~mask, -100)
    return logits, labels, mask


def logprob_tol(logits: torch.Tensor) -> float:
    """Scale: log_softmax rounds at the size of the logits, and a row adds up to T of them."""
    return f32_tol(8 * logits.shape[1] * (1.0 + float(logits.abs().max())))


@points(3)
@exercise("sequence_logprob")
@graded(max_examples=25)
@given(s=logprob_shapes, seed=seeds, scale=st.sampled_from([0.5, 2.0, 10.0]), ignored=st.booleans())
def test_logprob_mean_matches_reference(student, s, seed, scale, ignored):
    """the mean log-probability of the labels over the masked positions of each row, 0 for a row without any;
    labels outside the mask may be -100 (tolerance f32_tol(8 * T * (1 + max |logit|)))"""
    logits, labels, mask = logprob_inputs(s, seed, scale, ignored)
    out = student.sequence_logprob(logits, labels, mask)
    expect_tensor(out, "sequence_logprob(logits, labels, mask)", shape=(s["B"],), floating=True)
    assert_close(out, ref.sequence_logprob(logits.double(), labels, mask), atol=logprob_tol(logits),
                 what="sequence log-probabilities (mean over the masked tokens)")


@points(1)
@exercise("sequence_logprob")
@graded(max_examples=12)
@given(s=logprob_shapes, seed=seeds, ignored=st.booleans())
def test_logprob_sum_option(student, s, seed, ignored):
    """reduction="sum" gives the sum over the masked positions instead of the mean
    (tolerance f32_tol(8 * T * (1 + max |logit|)))"""
    logits, labels, mask = logprob_inputs(s, seed, 2.0, ignored)
    out = student.sequence_logprob(logits, labels, mask, reduction="sum")
    expect_tensor(out, "sequence_logprob(..., reduction='sum')", shape=(s["B"],), floating=True)
    assert_close(out, ref.sequence_logprob(logits.double(), labels, mask, reduction="sum"),
                 atol=logprob_tol(logits), what="sequence log-probabilities (sum over the masked tokens)")


@points(1)
@exercise("sequence_logprob")
@graded(max_examples=10)
@given(s=logprob_shapes, seed=seeds, scale=st.sampled_from([1e3, 1e4]))
def test_logprob_extreme_logits(student, s, seed, scale):
    """logits in the thousands give finite log-probabilities equal to the reference (no log of a softmax that
    underflowed) (tolerance f32_tol(8 * T * (1 + max |logit|)))"""
    logits, labels, mask = logprob_inputs(s, seed, scale, True)
    out = student.sequence_logprob(logits, labels, mask)
    assert_close(out, ref.sequence_logprob(logits.double(), labels, mask), atol=logprob_tol(logits),
                 what=f"sequence log-probabilities with logits of scale {scale:g}")


@points(2)
@exercise("sequence_logprob")
@graded(max_examples=12)
@given(s=logprob_shapes, seed=seeds, ignored=st.booleans())
def test_logprob_gradients(student, s, seed, ignored):
    """the gradient with respect to the logits equals the reference's, zero outside the mask
    (tolerance f32_tol(8 * T * (1 + max |logit|)))"""
    logits, labels, mask = logprob_inputs(s, seed, 2.0, ignored)
    cot = randn((s["B"],), seed + 3)
    got = student.sequence_logprob.vjp(logits, labels, mask, cotangent=cot)
    grad = got["arg_grads"][0]
    if grad is None:
        raise AssertionError("no gradient reached the logits: is the result detached?")
    leaf = logits.double().requires_grad_(True)
    (ref.sequence_logprob(leaf, labels, mask) * cot.double()).sum().backward()
    assert_close(grad, leaf.grad, atol=logprob_tol(logits), what="gradient with respect to the logits")


# ------------------------------------------------------------------------------------------------------ dpo_loss
def logps(n: int, seed: int, spread: float) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return tuple((-torch.rand(n, generator=g) * spread).float() for _ in range(4))


def check_dpo(out, batch: int, expected: tuple, tol: float, label: str) -> None:
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError("dpo_loss should return a triple (loss, chosen_rewards, rejected_rewards)")
    loss, chosen, rejected = out
    expect_tensor(loss, f"the loss{label}", shape=(), floating=True)
    expect_tensor(chosen, f"chosen_rewards{label}", shape=(batch,), floating=True)
    expect_tensor(rejected, f"rejected_rewards{label}", shape=(batch,), floating=True)
    assert_close(chosen, expected[1], atol=tol, what=f"chosen_rewards{label}")
    assert_close(rejected, expected[2], atol=tol, what=f"rejected_rewards{label}")
    assert_close(loss, expected[0], atol=tol, what=f"the DPO loss{label}")


@points(3)
@exercise("dpo_loss")
@graded(max_examples=25)
@given(batch=st.integers(1, 6), seed=seeds, spread=st.sampled_from([1.0, 10.0, 40.0]),
       beta=st.sampled_from([0.05, 0.1, 0.5, 2.0]))
def test_dpo_matches_reference(student, batch, seed, spread, beta):
    """loss, chosen and rejected rewards equal the DPO paper's definitions
    (tolerance f32_tol(4 * beta * max |log-probability|))"""
    pc, pr, rc, rr = logps(batch, seed, spread)
    out = student.dpo_loss(pc, pr, rc, rr, beta=beta)
    expected = ref.dpo_loss(pc.double(), pr.double(), rc.double(), rr.double(), beta=beta)
    check_dpo(out, batch, expected, f32_tol(4 * beta * spread), f" (beta={beta:g})")


@points(1)
@exercise("dpo_loss")
@graded(max_examples=6)
@given(batch=st.integers(1, 6), seed=seeds)
def test_dpo_default_beta(student, batch, seed):
    """beta defaults to 0.1 (tolerance f32_tol(4 * 0.1 * max |log-probability|))"""
    pc, pr, rc, rr = logps(batch, seed, 20.0)
    expected = ref.dpo_loss(pc.double(), pr.double(), rc.double(), rr.double())
    check_dpo(student.dpo_loss(pc, pr, rc, rr), batch, expected, f32_tol(4 * 0.1 * 20.0), " (default beta)")


@points(2)
@exercise("dpo_loss")
@graded(max_examples=12)
@given(batch=st.integers(1, 6), seed=seeds, margin=st.sampled_from([-5e4, -2e3, -300.0, 300.0, 2e3, 5e4]),
       beta=st.sampled_from([0.1, 1.0]))
def test_dpo_stable_for_large_margins(student, batch, seed, margin, beta):
    """reward margins of hundreds to tens of thousands give a finite loss equal to the reference, where
    log(sigmoid(x)) would give -inf (tolerance f32_tol(4 * beta * |margin|))"""
    pc, pr, rc, rr = logps(batch, seed, 5.0)
    pc = pc + margin / beta * torch.linspace(0.5, 1.0, batch)  # chosen far more (or far less) likely
    out = student.dpo_loss(pc, pr, rc, rr, beta=beta)
    expected = ref.dpo_loss(pc.double(), pr.double(), rc.double(), rr.double(), beta=beta)
    check_dpo(out, batch, expected, f32_tol(4 * abs(margin) + 40 * beta), f" (margins near {margin:g})")


@points(1)
@exercise("dpo_loss")
def test_dpo_known_values(student):
    """equal policy and reference give loss log 2 and zero rewards; a worked example by hand (tolerance 1e-5)"""
    same = torch.tensor([-3.0, -7.5])
    loss, chosen, rejected = check_pair(student.dpo_loss(same, same - 1.0, same, same - 1.0, beta=0.5))
    assert_close(loss, torch.tensor(math.log(2.0)), atol=1e-5, what="the loss when policy == reference")
    assert_close(chosen, torch.zeros(2), atol=1e-6, what="chosen_rewards when policy == reference")
    assert_close(rejected, torch.zeros(2), atol=1e-6, what="rejected_rewards when policy == reference")
    # beta = 0.5; chosen gained 2 nats over the reference, rejected lost 2: margin 0.5 * 2 - 0.5 * (-2) = 2
    out = check_pair(student.dpo_loss(torch.tensor([-8.0]), torch.tensor([-12.0]), torch.tensor([-10.0]),
                                      torch.tensor([-10.0]), beta=0.5))
    assert_close(out[0], torch.tensor(math.log1p(math.exp(-2.0))), atol=1e-5, what="the loss of the worked example")
    assert_close(out[1], torch.tensor([1.0]), atol=1e-5, what="chosen_rewards of the worked example")
    assert_close(out[2], torch.tensor([-1.0]), atol=1e-5, what="rejected_rewards of the worked example")


def check_pair(out):
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise AssertionError("dpo_loss should return a triple (loss, chosen_rewards, rejected_rewards)")
    return out
