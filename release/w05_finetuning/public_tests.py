"""Public tests for week 5 (finetuning): small, instant checks shipped with the notebook.

Each uses a tiny example whose answer was worked out by hand, or a property; there is no reference
implementation here. The classification checks run on a toy stand-in with the GPT's attribute names (not
your week-3 model), so they test this week's code only. The hidden tests check the same contract much
more thoroughly, on the course's own GPT.
"""

import math

import torch
import torch.nn as nn

from autograder.student.public import public_test


def _tensor(value, what):
    assert isinstance(value, torch.Tensor), f"{what} should return a torch.Tensor, got {type(value).__name__}"
    return value


class _Norm(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.shift = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        return x * self.scale + self.shift


class _Mixer(nn.Module):
    """A stand-in for a transformer block: adds a running mean over earlier positions (causal)."""

    def __init__(self, width):
        super().__init__()
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        steps = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
        return x + self.proj(x.cumsum(dim=1) / steps)


class _ToyGPT(nn.Module):
    """Just the attribute names of the week-3 GPT, around a much simpler computation."""

    def __init__(self, vocab=11, width=6, context=8, blocks=3):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Embedding(context, width)
        self.trf_blocks = nn.Sequential(*[_Mixer(width) for _ in range(blocks)])
        self.final_norm = _Norm(width)
        self.out_head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids):
        hidden = self.trf_blocks(self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1])))
        return self.out_head(self.final_norm(hidden))


def _toy(seed=0, **sizes):
    torch.manual_seed(seed)
    return _ToyGPT(**sizes)


# ------------------------------------------------------------------------------------------------
# Exercise 1: prepare_for_classification
# ------------------------------------------------------------------------------------------------


@public_test("prepare_for_classification")
def new_head(ns):
    """out_head becomes nn.Linear(emb_dim, num_classes) with a bias, and the model itself is returned"""
    model = _toy()
    back = ns.prepare_for_classification(model, 3)
    assert back is model, "prepare_for_classification should change the model in place and return it"
    head = model.out_head
    assert isinstance(head, nn.Linear), f"out_head should be an nn.Linear, got {type(head).__name__}"
    assert (head.in_features, head.out_features) == (6, 3), (
        f"out_head should map emb_dim = 6 features to 3 classes, got {head.in_features} -> {head.out_features}; "
        "read emb_dim off model.tok_emb"
    )
    assert head.bias is not None, "the new head should have a bias (nn.Linear's default)"


@public_test("prepare_for_classification")
def only_last_block_norm_and_head_train(ns):
    """requires_grad is True exactly for the last block, final_norm and the head"""
    model = ns.prepare_for_classification(_toy(blocks=3), 2)
    training = sorted(name for name, p in model.named_parameters() if p.requires_grad)
    wanted = ["final_norm.scale", "final_norm.shift", "out_head.bias", "out_head.weight",
              "trf_blocks.2.proj.bias", "trf_blocks.2.proj.weight"]
    assert training == wanted, (
        f"with 3 blocks, the parameters that train should be {wanted}; yours are {training}"
    )


@public_test("prepare_for_classification")
def pretrained_weights_kept(ns):
    """every parameter outside the head keeps its value"""
    model = _toy(seed=3)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if not name.startswith("out_head")}
    ns.prepare_for_classification(model, 2)
    now = dict(model.named_parameters())
    for key in before:
        assert key in now and torch.equal(now[key], before[key]), f"{key} changed: only the head should be new"


# ------------------------------------------------------------------------------------------------
# Exercise 2: classification_logits
# ------------------------------------------------------------------------------------------------


def _classifier(num_classes=2):
    torch.manual_seed(1)
    model = _ToyGPT()
    model.out_head = nn.Linear(6, num_classes)
    return model.eval()


@public_test("classification_logits")
def shape_is_batch_by_classes(ns):
    """(B, T) token ids give (B, num_classes) scores"""
    model = _classifier(4)
    out = _tensor(ns.classification_logits(model, torch.zeros(5, 7, dtype=torch.long)), "classification_logits")
    assert out.shape == (5, 4), f"for 5 sequences and 4 classes the shape should be (5, 4), got {tuple(out.shape)}"


@public_test("classification_logits")
def read_at_the_last_position(ns):
    """the scores come from the last position, the only one that has seen every token"""
    model = _classifier()
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    with torch.no_grad():
        every_position = model(ids)
        out = ns.classification_logits(model, ids)
    assert torch.allclose(out, every_position[:, 3], atol=1e-6), (
        "expected the model's output at the last position (index T - 1 = 3)"
        + (": these are the first position's scores" if torch.allclose(out, every_position[:, 0]) else "")
    )


@public_test("classification_logits")
def gradients_reach_the_head(ns):
    """the scores keep their graph: backward reaches the head"""
    model = _classifier()
    ns.classification_logits(model, torch.tensor([[1, 2, 3]])).sum().backward()
    assert model.out_head.weight.grad is not None, (
        "no gradient reached out_head: do not use torch.no_grad() or .detach() in classification_logits"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: classification_accuracy
# ------------------------------------------------------------------------------------------------


class _FirstTokenVotes(nn.Module):
    """Predicts class = the first token of the sequence, at every position."""

    def forward(self, ids):
        return nn.functional.one_hot(ids[:, :1].expand(-1, ids.shape[1]), 3).float()


@public_test("classification_accuracy")
def counts_examples_not_batches(ns):
    """3 right out of 4, then 0 out of 1: the accuracy is 3/5 = 0.6, not the mean of 0.75 and 0"""
    loader = [(torch.tensor([[0, 1], [1, 1], [2, 0], [0, 2]]), torch.tensor([0, 1, 2, 1])),
              (torch.tensor([[2, 2]]), torch.tensor([1]))]
    got = ns.classification_accuracy(_FirstTokenVotes(), loader)
    got = got.item() if isinstance(got, torch.Tensor) else got
    assert isinstance(got, float), f"return a Python float, got {type(got).__name__}"
    assert abs(got - 0.6) < 1e-9, (
        f"expected 0.6 (3 of 5 examples right), got {got}" + (": that is the mean over batches" if
                                                              abs(got - 0.375) < 1e-9 else "")
    )


@public_test("classification_accuracy")
def all_right(ns):
    """a loader whose labels are the model's predictions gives 1.0"""
    loader = [(torch.tensor([[i % 3, 0, 1]]), torch.tensor([i % 3])) for i in range(7)]
    got = float(ns.classification_accuracy(_FirstTokenVotes(), loader))
    assert abs(got - 1.0) < 1e-9, f"every prediction is right, so the accuracy is 1.0; got {got}"


# ------------------------------------------------------------------------------------------------
# Exercise 4: format_instruction
# ------------------------------------------------------------------------------------------------


@public_test("format_instruction")
def with_an_input(ns):
    """instruction, input and response header, each after a blank line"""
    entry = {"instruction": "Name the colour of the fruit.", "input": "a ripe plum", "output": "Purple."}
    got = ns.format_instruction(entry)
    want = "### Instruction:\nName the colour of the fruit.\n\n### Input:\na ripe plum\n\n### Response:\n"
    assert got == want, f"expected\n{want!r}\ngot\n{got!r}"


@public_test("format_instruction")
def without_an_input(ns):
    """an empty input leaves the whole input section out"""
    entry = {"instruction": "Count to three.", "input": "", "output": "One, two, three."}
    got = ns.format_instruction(entry)
    want = "### Instruction:\nCount to three.\n\n### Response:\n"
    assert got == want, f"expected\n{want!r}\ngot\n{got!r}"


# ------------------------------------------------------------------------------------------------
# Exercise 5: collate_instructions
# ------------------------------------------------------------------------------------------------


def _pair(out):
    assert isinstance(out, tuple) and len(out) == 2, "collate_instructions should return (inputs, targets)"
    x, y = (_tensor(t, "collate_instructions") for t in out)
    assert x.dtype == torch.long and y.dtype == torch.long, f"use int64 tensors, got {x.dtype} and {y.dtype}"
    return x.tolist(), y.tolist()


@public_test("collate_instructions")
def pad_shift_and_ignore(ns):
    """the worked example: [[5, 6, 7], [8]] with pad 0"""
    x, y = _pair(ns.collate_instructions([[5, 6, 7], [8]], pad_token_id=0))
    assert x == [[5, 6, 7], [8, 0, 0]], f"inputs should be [[5, 6, 7], [8, 0, 0]], got {x}"
    assert y == [[6, 7, 0], [0, -100, -100]], (
        f"targets should be [[6, 7, 0], [0, -100, -100]], got {y}: shifted by one, the first padding "
        "target kept (the model learns to stop), the later ones ignore_index"
    )


@public_test("collate_instructions")
def prompt_targets_ignored(ns):
    """with prompt_lengths=[3, 1], targets that predict prompt tokens are ignored"""
    _, y = _pair(ns.collate_instructions([[1, 2, 3, 4, 5], [6, 7]], 9, ignore_index=-1, prompt_lengths=[3, 1]))
    assert y == [[-1, -1, 4, 5, 9], [7, 9, -1, -1, -1]], (
        f"expected [[-1, -1, 4, 5, 9], [7, 9, -1, -1, -1]], got {y}. Prompt of 3 tokens: the targets 2 and 3 "
        "are prompt tokens; 4 is the first response token and is kept. A prompt of 1 token masks nothing."
    )


@public_test("collate_instructions")
def truncated_last(ns):
    """allowed_max_length=2 keeps the first two columns of the full result"""
    x, y = _pair(ns.collate_instructions([[1, 2, 3, 4], [6]], 0, allowed_max_length=2))
    assert x == [[1, 2], [6, 0]] and y == [[2, 3], [0, -100]], (
        f"expected inputs [[1, 2], [6, 0]] and targets [[2, 3], [0, -100]], got {x} and {y}"
    )


@public_test("collate_instructions")
def empty_sequence(ns):
    """an empty sequence is a row of padding whose first target is kept"""
    x, y = _pair(ns.collate_instructions([[], [3, 4]], 7))
    assert x == [[7, 7], [3, 4]] and y == [[7, -100], [4, 7]], (
        f"expected inputs [[7, 7], [3, 4]] and targets [[7, -100], [4, 7]], got {x} and {y}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 6: sequence_logprob
# ------------------------------------------------------------------------------------------------


@public_test("sequence_logprob")
def uniform_logits(ns):
    """equal logits over 4 tokens: every token has log-probability log(1/4), the mean too"""
    mask = torch.tensor([[True, True, False], [False, True, False]])
    out = _tensor(ns.sequence_logprob(torch.zeros(2, 3, 4), torch.tensor([[0, 3, 1], [2, 2, 2]]), mask),
                  "sequence_logprob")
    assert out.shape == (2,), f"one value per sequence: shape (2,), got {tuple(out.shape)}"
    assert torch.allclose(out, torch.full((2,), math.log(0.25)), atol=1e-6), (
        f"expected [log 1/4, log 1/4] = [-1.3863, -1.3863], got {out.tolist()}. A sum over the masked tokens "
        "would give -2.77 for the first row: the default is the mean."
    )


@public_test("sequence_logprob")
def by_hand(ns):
    """logits [0, ln 3]: label 1 has probability 3/4; the mask picks positions 0 and 2"""
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 0.0], [0.0, math.log(3.0)]]])
    labels = torch.tensor([[1, -100, 0]])
    mask = torch.tensor([[True, False, True]])
    out = ns.sequence_logprob(logits, labels, mask)
    want = (math.log(0.75) + math.log(0.25)) / 2
    assert torch.allclose(out, torch.tensor([want]), atol=1e-6), (
        f"expected the mean of log 3/4 and log 1/4 = {want:.4f}, got {out.tolist()}. The label -100 sits where "
        "the mask is False: it must never be used as an index."
    )
    total = ns.sequence_logprob(logits, labels, mask, reduction="sum")
    assert torch.allclose(total, torch.tensor([2 * want]), atol=1e-6), (
        f"with reduction='sum' expected {2 * want:.4f}, got {total.tolist()}"
    )


@public_test("sequence_logprob")
def empty_mask_and_large_logits(ns):
    """a row with no masked token gives 0; logits of 1e4 stay finite"""
    logits = torch.tensor([[[1e4, 0.0], [0.0, 1e4]], [[1.0, 2.0], [3.0, 4.0]]])
    mask = torch.tensor([[True, True], [False, False]])
    out = ns.sequence_logprob(logits, torch.tensor([[0, 0], [1, 1]]), mask)
    assert torch.isfinite(out).all(), f"got {out.tolist()}: use log_softmax, not log(softmax(...))"
    assert torch.allclose(out, torch.tensor([-5e3, 0.0]), atol=1e-2), (
        f"expected [(0 - 10000) / 2, 0] = [-5000, 0], got {out.tolist()}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 7: dpo_loss
# ------------------------------------------------------------------------------------------------


def _triple(out):
    assert isinstance(out, tuple) and len(out) == 3, "dpo_loss should return (loss, chosen_rewards, rejected_rewards)"
    return out


@public_test("dpo_loss")
def policy_equals_reference(ns):
    """when the policy is the reference the rewards are 0 and the loss is log 2"""
    a, b = torch.tensor([-3.0, -9.0, -1.5]), torch.tensor([-4.0, -2.0, -6.0])
    loss, chosen, rejected = _triple(ns.dpo_loss(a, b, a, b))
    assert _tensor(loss, "dpo_loss").dim() == 0, f"the loss should be a scalar (0-dim), got shape {tuple(loss.shape)}"
    assert abs(loss.item() - math.log(2)) < 1e-6, f"expected log 2 = 0.6931, got {loss.item():.4f}"
    assert chosen.shape == (3,) and rejected.shape == (3,), "one reward per example: shape (B,)"
    assert not chosen.abs().any() and not rejected.abs().any(), "the rewards should be 0"


@public_test("dpo_loss")
def worked_example(ns):
    """beta 0.2: chosen +5 nats over the reference, rejected -5: rewards 1 and -1, loss log(1 + e^-2)"""
    loss, chosen, rejected = _triple(ns.dpo_loss(torch.tensor([-5.0]), torch.tensor([-15.0]), torch.tensor([-10.0]),
                                                 torch.tensor([-10.0]), beta=0.2))
    assert torch.allclose(chosen, torch.tensor([1.0])) and torch.allclose(rejected, torch.tensor([-1.0])), (
        f"rewards should be beta * (policy - reference) = [1.0] and [-1.0], got {chosen.tolist()} and "
        f"{rejected.tolist()}"
    )
    want = math.log1p(math.exp(-2.0))
    assert abs(loss.item() - want) < 1e-5, (
        f"expected -log sigmoid(1 - (-1)) = {want:.4f}, got {loss.item():.4f}"
        + (": the sign of the margin is flipped" if abs(loss.item() - math.log1p(math.exp(2.0))) < 1e-4 else "")
    )


@public_test("dpo_loss")
def huge_margin(ns):
    """a margin of -2000 gives a loss of about 2000, not inf"""
    loss, _, _ = _triple(ns.dpo_loss(torch.tensor([-2000.0]), torch.tensor([0.0]), torch.tensor([0.0]),
                                     torch.tensor([0.0]), beta=1.0))
    assert math.isfinite(loss.item()), "the loss overflowed: use F.logsigmoid instead of log(sigmoid(...))"
    assert abs(loss.item() - 2000.0) < 1e-2, f"expected about 2000, got {loss.item()}"
