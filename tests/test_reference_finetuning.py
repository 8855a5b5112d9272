"""Trust in the week 5 oracle: ``reference.finetuning`` against independent formulas, and the worker's
stand-ins (``autograder/sandbox/parts/finetuning.py``) against the reference.

The independent versions are written straight from the definitions, sharing no code with the reference:
log-probabilities from ``F.log_softmax`` + ``gather`` (and from ``F.cross_entropy`` with ``ignore_index``),
the DPO loss from ``F.logsigmoid`` as in the paper (Rafailov et al., 2023, eq. 7), the instruction collate
written the way the book writes it (by value: the first padding target found by ``nonzero``), and
hand-worked examples.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.sandbox.parts import finetuning as parts  # noqa: E402
from autograder.sandbox.parts import finetuning_tools as tools  # noqa: E402
from autograder.sandbox.parts import gpt as gpt_parts  # noqa: E402
from reference import finetuning as ref  # noqa: E402
from reference import gpt  # noqa: E402

torch.set_num_threads(1)

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=60)
SLOW = settings(derandomize=True, database=None, deadline=None, max_examples=15)
seeds = st.integers(0, 2**31 - 1)
DATA = ROOT / "assignments" / "w05_finetuning" / "data"


# ------------------------------------------------------------------------------------------- format_instruction
def test_format_instruction_by_hand():
    entry = {"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"}
    assert ref.format_instruction(entry) == (
        "### Instruction:\nGive the opposite of the word.\n\n### Input:\nhot\n\n### Response:\n")
    entry = {"instruction": "What is two plus two?", "input": "", "output": "Four."}
    assert ref.format_instruction(entry) == "### Instruction:\nWhat is two plus two?\n\n### Response:\n"


@FAST
@given(instruction=st.text(), text=st.text(), output=st.text())
def test_format_instruction_sections(instruction, text, output):
    prompt = ref.format_instruction({"instruction": instruction, "input": text, "output": output})
    assert prompt.startswith("### Instruction:\n" + instruction)
    assert prompt.endswith("\n\n### Response:\n")
    assert ("\n\n### Input:\n" + text + "\n\n### Response:\n" in prompt) == (text != "")
    if text == "":
        assert len(prompt) == len("### Instruction:\n") + len(instruction) + len("\n\n### Response:\n")


# ---------------------------------------------------------------------------------------- collate_instructions
def book_collate(batch, pad, ignore, allowed=None, prompts=None):
    """The collate as written by value: append the end of text, pad, shift, then find the padding targets
    with nonzero and ignore all but the first; the prompt's targets are ignored up to p - 1."""
    longest = max(len(item) + 1 for item in batch)
    xs, ys = [], []
    for k, item in enumerate(batch):
        new = list(item) + [pad]
        padded = new + [pad] * (longest - len(new))
        x, y = torch.tensor(padded[:-1]), torch.tensor(padded[1:])
        where = torch.nonzero(y == pad).squeeze(1)
        if where.numel() > 1:
            y[where[1:]] = ignore
        if prompts is not None:
            for t in range(prompts[k] - 1):
                y[t] = ignore
        if allowed is not None:
            x, y = x[:allowed], y[:allowed]
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def test_collate_by_hand():
    inputs, targets = ref.collate_instructions([[1, 2, 3], [4]], pad_token_id=9)
    assert inputs.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert targets.tolist() == [[2, 3, 9], [9, -100, -100]]
    assert inputs.dtype == targets.dtype == torch.int64
    inputs, targets = ref.collate_instructions([[1, 2, 3, 4], [5, 6], []], 0, ignore_index=-1,
                                               prompt_lengths=[2, 2, 0])
    assert inputs.tolist() == [[1, 2, 3, 4], [5, 6, 0, 0], [0, 0, 0, 0]]
    assert targets.tolist() == [[-1, 3, 4, 0], [-1, 0, -1, -1], [0, -1, -1, -1]]
    _, targets = ref.collate_instructions([[1, 2, 3, 4], [5, 6]], 0, allowed_max_length=2, prompt_lengths=[4, 1])
    assert targets.tolist() == [[-100, -100], [6, 0]]


@st.composite
def collate_cases(draw):
    vocab = draw(st.integers(2, 50))
    pad = draw(st.integers(0, vocab - 1))
    tokens = st.integers(0, vocab - 1).filter(lambda t: t != pad)
    batch = draw(st.lists(st.lists(tokens, max_size=9), min_size=1, max_size=5).filter(lambda b: max(map(len, b)) > 0))
    prompts = draw(st.none() | st.tuples(*[st.integers(0, len(seq)) for seq in batch]).map(list))
    allowed = draw(st.none() | st.integers(1, 12))
    return batch, pad, draw(st.sampled_from([-100, -1])), allowed, prompts


@FAST
@given(case=collate_cases())
def test_collate_equals_the_by_value_version(case):
    batch, pad, ignore, allowed, prompts = case
    got = ref.collate_instructions(batch, pad, ignore, allowed, prompts)
    want = book_collate(batch, pad, ignore, allowed, prompts)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@FAST
@given(case=collate_cases(), seed=seeds)
def test_collate_targets_give_the_response_loss(case, seed):
    """cross_entropy(ignore_index) over the collated targets = the mean of -log p over exactly the tokens
    that should be learned: each response token after its predecessor, and one end of text per sequence."""
    batch, pad, ignore, _, prompts = case
    inputs, targets = ref.collate_instructions(batch, pad, ignore, prompt_lengths=prompts)
    assert torch.equal(inputs[:, 1:][targets[:, :-1] != ignore], targets[:, :-1][targets[:, :-1] != ignore])
    V = max(max([max(s) for s in batch if s] + [pad]) + 1, 2)
    logits = torch.randn(*targets.shape, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if (targets == ignore).all():
        return
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=ignore)
    logp = F.log_softmax(logits, -1)
    terms = []
    for row, seq in enumerate(batch):
        p = 0 if prompts is None else prompts[row]
        full = list(seq) + [pad]
        start = max(p, 1)  # the first token has no predecessor in the row; prompt tokens are not learned
        for i in range(start, len(full)):
            terms.append(-logp[row, i - 1, full[i]])
        if not seq:  # an empty sequence still learns end of text after end of text
            terms.append(-logp[row, 0, pad])
    assert torch.allclose(loss, torch.stack(terms).mean())


# ------------------------------------------------------------------------------------------ sequence_logprob
def independent_logprob(logits, labels, mask, reduction="mean"):
    out = []
    logp = F.log_softmax(logits, dim=-1)
    for b in range(logits.shape[0]):
        picked = [logp[b, t].gather(0, labels[b, t].view(1)) for t in range(logits.shape[1]) if mask[b, t]]
        total = torch.cat(picked).sum() if picked else logits.new_zeros(())
        out.append(total / len(picked) if reduction == "mean" and picked else total)
    return torch.stack(out)


@st.composite
def logprob_cases(draw):
    B, T, V = draw(st.integers(1, 4)), draw(st.integers(1, 7)), draw(st.integers(2, 12))
    seed = draw(seeds)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * draw(st.sampled_from([0.1, 1.0, 30.0]))
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    return logits, labels, mask


@FAST
@given(case=logprob_cases(), reduction=st.sampled_from(["mean", "sum"]))
def test_sequence_logprob_equals_log_softmax_and_gather(case, reduction):
    logits, labels, mask = case
    got = ref.sequence_logprob(logits, labels.masked_fill(~mask, -100), mask, reduction=reduction)
    torch.testing.assert_close(got, independent_logprob(logits, labels, mask, reduction), rtol=1e-12, atol=1e-12)


@FAST
@given(case=logprob_cases())
def test_sequence_logprob_sum_is_minus_cross_entropy(case):
    logits, labels, mask = case
    targets = labels.masked_fill(~mask, -100)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none").sum(-1)
    torch.testing.assert_close(ref.sequence_logprob(logits, targets, mask, reduction="sum"), -nll)


def test_sequence_logprob_extreme_logits_stay_finite():
    logits = torch.tensor([[[1e4, -1e4, 0.0], [0.0, 3e4, -3e4]]], dtype=torch.float32)
    labels, mask = torch.tensor([[1, 2]]), torch.tensor([[True, True]])
    got = ref.sequence_logprob(logits, labels, mask)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.tensor([-(2e4 + 6e4) / 2]))
    naive = torch.log(torch.softmax(logits, -1)).gather(-1, labels.unsqueeze(-1))
    assert torch.isinf(naive).any()  # what the stable form avoids


def test_sequence_logprob_all_false_rows_are_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[False] * 3, [True, False, True]])
    out = ref.sequence_logprob(logits, torch.full((2, 3), -100).masked_fill(mask, 1), mask)
    assert out[0] == 0
    out.sum().backward()
    assert (logits.grad[0] == 0).all() and (logits.grad[1, 1] == 0).all()


# ---------------------------------------------------------------------------------------------- dpo_loss
@FAST
@given(seed=seeds, n=st.integers(1, 8), beta=st.sampled_from([0.01, 0.1, 0.5, 3.0]))
def test_dpo_loss_is_the_paper_formula(seed, n, beta):
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-torch.rand(n, generator=g, dtype=torch.float64) * 30 for _ in range(4))
    loss, chosen, rejected = ref.dpo_loss(pc, pr, rc, rr, beta=beta)
    # eq. 7: -E log sigma(beta log pi(yw)/pi_ref(yw) - beta log pi(yl)/pi_ref(yl)); implicit reward
    # r(x, y) = beta log pi(y|x) / pi_ref(y|x) (section 5)
    paper = -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()
    torch.testing.assert_close(loss, paper)
    torch.testing.assert_close(chosen, beta * (pc - rc))
    torch.testing.assert_close(rejected, beta * (pr - rr))
    torch.testing.assert_close(loss, F.softplus(-(chosen - rejected)).mean())
    assert not chosen.requires_grad and not rejected.requires_grad


def test_dpo_loss_defaults_and_known_values():
    same = torch.tensor([-4.0, -9.0])
    loss, chosen, rejected = ref.dpo_loss(same, same, same, same)
    assert math.isclose(loss.item(), math.log(2.0), rel_tol=1e-6) and not chosen.any() and not rejected.any()
    loss, chosen, rejected = ref.dpo_loss(torch.tensor([-8.0]), torch.tensor([-12.0]), torch.tensor([-10.0]),
                                          torch.tensor([-10.0]), beta=0.5)
    assert chosen.item() == 1.0 and rejected.item() == -1.0
    assert math.isclose(loss.item(), math.log1p(math.exp(-2.0)), rel_tol=1e-6)
    a = ref.dpo_loss(*(torch.tensor([v]) for v in (-1.0, -2.0, -1.5, -1.5)))[0]
    b = ref.dpo_loss(*(torch.tensor([v]) for v in (-1.0, -2.0, -1.5, -1.5)), beta=0.1)[0]
    assert a == b


@pytest.mark.parametrize("margin", [-1e5, -1e3, -120.0, 120.0, 1e3, 1e5])
def test_dpo_loss_is_stable_for_large_margins(margin):
    pc = torch.tensor([margin], dtype=torch.float32, requires_grad=True)
    zero = torch.zeros(1)
    loss, _, _ = ref.dpo_loss(pc, zero, zero, zero, beta=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pc.grad).all()
    # softplus(-m): about -m for a very negative margin, about exp(-m) (so 0 in float32) for a large one
    expected = -margin if margin < 0 else 0.0
    assert math.isclose(loss.item(), expected, rel_tol=1e-6, abs_tol=1e-30)
    naive = -torch.log(torch.sigmoid(torch.tensor(margin, dtype=torch.float32)))
    assert margin > 0 or torch.isinf(naive)  # what logsigmoid avoids


@FAST
@given(seed=seeds, beta=st.sampled_from([0.1, 1.0]))
def test_dpo_gradient_pushes_chosen_up_and_rejected_down(seed, beta):
    g = torch.Generator().manual_seed(seed)
    pc, pr = (torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True) for _ in range(2))
    rc, rr = torch.randn(3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    ref.dpo_loss(pc, pr, rc, rr, beta=beta)[0].backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descending the loss raises chosen, lowers rejected
    torch.testing.assert_close(pc.grad, -pr.grad)


# ------------------------------------------------------------------------------------------------ classification
cfgs = st.fixed_dictionaries({"vocab_size": st.integers(3, 20), "context_length": st.integers(2, 8),
                              "n_heads": st.integers(1, 3), "head_dim": st.integers(2, 4),
                              "n_layers": st.integers(1, 3), "qkv_bias": st.booleans()})


def config(c):
    c = dict(c)
    c["emb_dim"] = c["n_heads"] * c.pop("head_dim")
    return c | {"drop_rate": 0.0}


@SLOW
@given(c=cfgs, classes=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_prepare_for_classification_trains_exactly_the_stated_parameters(c, classes, seed):
    cfg = config(c)
    torch.manual_seed(seed)
    model = gpt.GPTModel(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert ref.prepare_for_classification(model, classes) is model
    last = f"trf_blocks.{cfg['n_layers'] - 1}."
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in before if n.startswith((last, "final_norm."))} | {"out_head.weight", "out_head.bias"}
    assert isinstance(model.out_head, nn.Linear) and model.out_head.weight.shape == (classes, cfg["emb_dim"])
    for n, p in model.named_parameters():
        if not n.startswith("out_head."):
            assert torch.equal(p, before[n])
    # one optimiser step moves exactly the trainable parameters
    x = torch.randint(0, cfg["vocab_size"], (3, cfg["context_length"]))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    F.cross_entropy(ref.classification_logits(model, x), torch.arange(3) % classes).backward()
    opt.step()
    moved = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert moved <= trainable and (moved or cfg["n_layers"] == 0)


@SLOW
@given(c=cfgs, seed=st.integers(0, 10_000), batch=st.integers(1, 3))
def test_classification_logits_are_the_last_position(c, seed, batch):
    cfg = config(c)
    torch.manual_seed(seed)
    model = ref.prepare_for_classification(gpt.GPTModel(cfg), 3).double().eval()
    x = torch.randint(0, cfg["vocab_size"], (batch, cfg["context_length"]))
    full = model(x)
    torch.testing.assert_close(ref.classification_logits(model, x), full[:, -1, :])
    # the last position depends on every token; by causality each earlier position ignores what follows it
    for t in range(x.shape[1]):
        torch.testing.assert_close(model(x[:, : t + 1])[:, -1], full[:, t])


def test_classification_accuracy_counts_examples_not_batches():
    class Fixed(nn.Module):
        def forward(self, x):  # predicts class (first token) at every position
            return F.one_hot(x[:, :1].expand(-1, x.shape[1]), 3).double()

    loader = [(torch.tensor([[0], [1], [2], [0]]), torch.tensor([0, 1, 2, 1])),  # 3 of 4 right
              (torch.tensor([[2]]), torch.tensor([0]))]  # 0 of 1
    assert ref.classification_accuracy(Fixed(), loader) == 3 / 5  # not (3/4 + 0) / 2
    ties = [(torch.tensor([[0]]), torch.tensor([0]))]

    class Tied(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], x.shape[1], 3)

    assert ref.classification_accuracy(Tied(), ties) == 1.0  # argmax of a tie is the lowest class


# ------------------------------------------------------------------------------------------------ trusted parts
@SLOW
@given(c=cfgs, classes=st.integers(2, 5), seed=st.integers(0, 10_000), batch=st.integers(1, 3))
def test_parts_equal_the_reference(c, classes, seed, batch):
    cfg = config(c)
    torch.manual_seed(seed)
    want = ref.prepare_for_classification(gpt.GPTModel(cfg), classes)
    torch.manual_seed(seed)
    got = parts.prepare_for_classification(gpt_parts.GPTModel(cfg), classes)
    assert tools.trainable_names(got) == sorted(n for n, p in want.named_parameters() if p.requires_grad)
    assert {n: p.shape for n, p in got.named_parameters()} == {n: p.shape for n, p in want.named_parameters()}
    torch.testing.assert_close(tools.parameters(got)["out_head.weight"], want.out_head.weight.detach())  # same draw
    got.load_state_dict(want.state_dict())
    want.eval(), got.eval()
    x = torch.randint(0, cfg["vocab_size"], (batch, cfg["context_length"]))
    torch.testing.assert_close(parts.classification_logits(got, x), ref.classification_logits(want, x))
    tools.zero_grads(got)
    parts.classification_logits(got, x).sum().backward()
    ref.classification_logits(want, x).sum().backward()
    grads = tools.gradients(got)
    for n, p in want.named_parameters():
        if p.grad is None:
            assert grads[n] is None, n
        else:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5)


def test_parts_finetune_trains_only_what_requires_grad_and_repeats():
    cfg = config({"vocab_size": 7, "context_length": 5, "n_heads": 2, "head_dim": 2, "n_layers": 2, "qkv_bias": False})
    x = torch.randint(0, 7, (24, 5), generator=torch.Generator().manual_seed(0))
    y = (x[:, -1] > 3).long()
    batches = [[(3 * i + j) % 24 for j in range(8)] for i in range(30)]
    runs = []
    for init_seed in (1, 2):
        torch.manual_seed(init_seed)  # a different draw of the whole model and of the student's head...
        model = parts.prepare_for_classification(gpt_parts.GPTModel(cfg), 2)
        torch.manual_seed(0)
        model.load_state_dict(gpt_parts.GPTModel(cfg).state_dict() | {k: v for k, v in model.state_dict().items()
                                                                       if k.startswith("out_head.")})
        tools.reset_head(model, 5)  # ...but the same head after the reset
        bound = 1 / cfg["emb_dim"] ** 0.5
        assert model.out_head.weight.abs().max() <= bound and model.out_head.bias.abs().max() <= bound
        before = tools.parameters(model)
        optimizer = tools.classifier_optimizer(model, 1e-2)
        losses = parts.finetune_classifier(model, optimizer, x, y, batches[:10])
        losses += parts.finetune_classifier(model, optimizer, x, y, batches[10:])  # resumes: same optimiser state
        after = tools.parameters(model)
        trainable = set(tools.trainable_names(model))
        assert {n for n in before if not torch.equal(before[n], after[n])} == trainable
        assert not model.training and len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])
        runs.append(losses)
    assert runs[0] == runs[1]


def test_parts_restore_defaults_undoes_global_switches():
    try:
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
        tools.restore_defaults()
        assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32
    finally:
        torch.set_grad_enabled(True)
        torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------------------------- shipped data
def test_shipped_data_is_what_make_data_builds_and_base_model_loads():
    import importlib.util

    spec = importlib.util.spec_from_file_location("w05_make_data", DATA / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    for name, text in make_data.build().items():
        assert (DATA / name).read_text() == text, name
    rows = [json.loads(line) for line in (DATA / "reviews.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val", "test"} and {r["label"] for r in rows} == {0, 1}
    assert max(len(ref.encode(r["text"])) for r in rows) < 192
    state = torch.load(DATA / "base_model.pt", weights_only=True)
    cfg = {"vocab_size": 257, "context_length": 192, "emb_dim": 96, "n_heads": 4, "n_layers": 4, "drop_rate": 0.0,
           "qkv_bias": False}
    model = gpt.GPTModel(cfg)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    for entry in json.loads((DATA / "instructions.json").read_text()):
        assert len(ref.encode(ref.format_instruction(entry) + entry["output"])) + 1 <= cfg["context_length"]
