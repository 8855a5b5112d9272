"""Hidden tests, week 4 (pretraining, the training loop). 42 points, plus 1 graded only on a GPU runner.

Each exercise is graded on its own. ``train`` runs on the kit's GPT model (``sandbox/parts/gpt.py``)
holding the reference's initial weights, with PyTorch's AdamW or SGD and the kit's data loaders, all
built in the worker; while it runs, the names ``cross_entropy``, ``lr_at_step`` and ``clip_grad_norm_``
refer to the kit's PyTorch-built versions (``sandbox/parts/training.py``). So a bug in the student's
loss, schedule, clipping, AdamW or data pipeline costs points only in that exercise. The checkpoint
tests drive the kit's model and optimizer with a trusted loop and only save and load with the student's
functions.

Tolerances. Pure functions (loss, schedule, clipping, AdamW) are compared with the reference in float64
on the same float32 inputs, within ``f32_tol(scale)`` (``autograder/compare.py``) with the scale next to
each test. ``train`` is compared with the reference loop run here, in float32, on the same model code,
weights, batches and optimizer: on CPU the parameters must agree to 1e-4 of the size of the reference's
whole update (measured differences of correct loops: below 1e-6) and losses to 1e-4 (relative); on
CUDA, 2e-2 and 2e-3 (GPU kernels round differently from the CPU). Learning rates to 1e-9 (relative),
token counts exactly. Checkpoints must resume bit for bit on CPU, within the CUDA tolerance on a GPU.

Device. With ``llmkit grade --device cuda`` the models, parameters and gradients of the AdamW,
clipping, train and checkpoint tests live on the GPU; the loss, dataset and schedule tests exchange
plain data and run on the CPU either way (the wire carries CPU tensors). One item needs a GPU and is
left out of the maximum elsewhere.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import assert_close, expect_tensor, f32_tol, graded
from autograder.proxy import StudentError
from autograder.sandbox.parts import gpt as kit_gpt
from reference import gpt as ref_gpt
from reference import training as ref

torch.set_num_threads(1)

points = pytest.mark.points
seeds = st.integers(0, 2**31 - 1)
SWAP = ("cross_entropy", "lr_at_step", "clip_grad_norm_")  # train is graded with the kit's versions of these
CORPUS = Path(__file__).resolve().parents[3] / "assignments" / "w04_pretraining" / "data" / "corpus.txt"
TOLERANCE = {"cpu": {"params": 1e-4, "loss": 1e-4}, "cuda": {"params": 2e-2, "loss": 2e-3}}


def tolerance(device: str) -> dict:
    return TOLERANCE["cuda" if str(device).startswith("cuda") else "cpu"]


def randn(shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) * scale).float()


def token_ids(n: int, vocab: int, seed: int) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def number(value, what: str) -> float:
    """A Python number, or a tensor holding one number (accepted where the notebook allows it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise AssertionError(f"{what} should be a number, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise AssertionError(f"{what} should be a single number, got a tensor of shape {tuple(value.shape)}")
        return float(value)
    return float(value)


# ----------------------------------------------------------------------------------------- cross_entropy
def targets_for(lead, vocab: int, seed: int, ignore_index: int, ignored: float) -> torch.Tensor:
    """Random targets with about ``ignored`` of the positions set to ``ignore_index``, at least one kept."""
    g = torch.Generator().manual_seed(seed + 1)
    targets = torch.randint(0, vocab, tuple(lead), generator=g)
    drop = torch.rand(tuple(lead), generator=g) < ignored
    drop.view(-1)[int(torch.randint(0, drop.numel(), (1,), generator=g))] = False
    return targets.masked_fill(drop, ignore_index)


loss_shapes = st.fixed_dictionaries({"lead": st.lists(st.integers(1, 6), min_size=1, max_size=2),
                                     "vocab": st.integers(1, 20)})


@points(2)
@pytest.mark.exercise("cross_entropy")
@graded(max_examples=20)
@given(s=loss_shapes, seed=seeds, scale=st.sampled_from([0.1, 1.0, 10.0]), ignored=st.sampled_from([0.0, 0.3, 0.7]),
       ignore_index=st.sampled_from([-100, -1, 0]))
def test_cross_entropy_matches_reference(student, s, seed, scale, ignored, ignore_index):
    """(N, V) or (B, T, V) logits, ignore_index at random positions (-100, -1, or a real class id 0): the
    mean over the kept positions equals the reference (tolerance f32_tol(10 * (scale + log V)))"""
    logits = randn(s["lead"] + [s["vocab"]], seed, scale)
    targets = targets_for(s["lead"], s["vocab"], seed, ignore_index, ignored)
    kwargs = {} if ignore_index == -100 else {"ignore_index": ignore_index}
    out = expect_tensor(student.cross_entropy(logits, targets, **kwargs), "cross_entropy(logits, targets)",
                        shape=(), floating=True)
    want = ref.cross_entropy(logits.double(), targets, ignore_index=ignore_index)
    assert_close(out, want, atol=f32_tol(10 * (scale + math.log(s["vocab"] + 1))),
                 what=f"cross_entropy with ignore_index={ignore_index}")


@points(1)
@pytest.mark.exercise("cross_entropy")
@graded(max_examples=15)
@given(n=st.integers(1, 6), vocab=st.integers(2, 12), seed=seeds, shift=st.sampled_from([1e3, -1e3, 1e4, 88.8]))
def test_cross_entropy_is_stable(student, n, vocab, seed, shift):
    """logits shifted by +-1000, 1e4 or 88.8 give finite losses equal to the reference's (tolerance f32_tol(|shift|))"""
    logits = randn((n, vocab), seed, 3.0) + shift
    targets = targets_for([n], vocab, seed, -100, 0.0)
    out = expect_tensor(student.cross_entropy(logits, targets), "cross_entropy(logits, targets)", shape=(),
                        floating=True)
    assert_close(out, ref.cross_entropy(logits.double(), targets), atol=f32_tol(abs(shift)),
                 what=f"cross_entropy of logits around {shift:g}")


@points(1)
@pytest.mark.exercise("cross_entropy")
@graded(max_examples=15)
@given(s=loss_shapes, seed=seeds, ignored=st.sampled_from([0.0, 0.5]))
def test_cross_entropy_gradient(student, s, seed, ignored):
    """the gradient with respect to the logits equals the reference's: (softmax - one-hot) / kept positions,
    zero at ignored positions (tolerance f32_tol(4))"""
    logits = randn(s["lead"] + [s["vocab"]], seed, 2.0)
    targets = targets_for(s["lead"], s["vocab"], seed, -100, ignored)
    got = student.cross_entropy.vjp(logits, targets, cotangent=torch.tensor(1.0))
    grad = got["arg_grads"][0]
    if grad is None:
        raise AssertionError("no gradient reached the logits: is the loss detached (.item(), float(), numpy)?")
    x = logits.double().requires_grad_(True)
    ref.cross_entropy(x, targets).backward()
    assert_close(grad, x.grad, atol=f32_tol(4.0), what="gradient of cross_entropy with respect to the logits")


@points(1)
@pytest.mark.exercise("cross_entropy")
def test_cross_entropy_all_ignored_is_nan(student):
    """when every target equals ignore_index the mean over zero positions is NaN, as the notebook states"""
    logits = randn((2, 3, 5), 7)
    out = expect_tensor(student.cross_entropy(logits, torch.full((2, 3), -100)), "cross_entropy(all ignored)",
                        shape=(), floating=True)
    if not torch.isnan(out):
        raise AssertionError(f"cross_entropy with every position ignored returned {float(out):g}; the notebook asks "
                             "for NaN (0 / 0, as PyTorch gives)")
    out = student.cross_entropy(logits, torch.full((2, 3), 4), ignore_index=4)
    if not (isinstance(out, torch.Tensor) and torch.isnan(out).all()):
        raise AssertionError("cross_entropy(..., ignore_index=4) with every target equal to 4 should be NaN")


@points(1)
@pytest.mark.exercise("cross_entropy")
def test_perplexity(student):
    """perplexity(loss) = exp(loss) as a Python float, for floats and 0-dim tensors (relative tolerance 1e-6)"""
    for loss in (0.0, 0.25, math.log(51.0), 3.3, 10.0):
        for arg in (loss, torch.tensor(loss)):
            got = student.perplexity(arg)
            kind = "a float" if isinstance(arg, float) else "a 0-dim tensor"
            if isinstance(got, bool) or not isinstance(got, (int, float)):
                raise AssertionError(f"perplexity({kind}) returned {type(got).__name__}; the notebook asks for a "
                                     "Python float (use float(...) or math.exp)")
            if not math.isclose(got, math.exp(loss), rel_tol=1e-6):
                raise AssertionError(f"perplexity({loss:g}) is wrong by {abs(got / math.exp(loss) - 1):.2g} (relative)")


# ------------------------------------------------------------------------------------------ GPTDataset
def dataset_items(student, ids, context, stride):
    ds = student.GPTDataset(ids, context, stride)
    n = ds.method("__len__")()
    if isinstance(n, bool) or not isinstance(n, int):
        raise AssertionError(f"len(GPTDataset(...)) returned {type(n).__name__}, expected an int")
    return n, ds


def check_window(item, i, ids, context, stride, what):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise AssertionError(f"{what}[{i}] should be a pair (input_ids, target_ids), got {type(item).__name__}")
    x, y = item
    want_x, want_y = ref.GPTDataset(ids, context, stride)[i]
    expect_tensor(x, f"input_ids of {what}[{i}]", shape=(context,), dtype=torch.long)
    expect_tensor(y, f"target_ids of {what}[{i}]", shape=(context,), dtype=torch.long)
    if not torch.equal(x, want_x):
        raise AssertionError(f"input_ids of {what}[{i}] are wrong: window i starts at token i * stride "
                             f"(= {i * stride}) and holds context_length tokens")
    if not torch.equal(y, want_y):
        hint = " (they equal the inputs: shift the targets by one token)" if torch.equal(y, x) else ""
        raise AssertionError(f"target_ids of {what}[{i}] are wrong{hint}: target j is the token after input j")


@points(2)
@pytest.mark.exercise("gpt_dataset")
@graded(max_examples=15)
@given(n=st.integers(0, 40), context=st.integers(1, 8), stride=st.integers(1, 10), seed=seeds)
def test_dataset_windows(student, n, context, stride, seed):
    """len and every (input_ids, target_ids) pair equal the reference: windows at multiples of stride, targets
    shifted by one, int64 tensors of length context_length, only windows whose targets fit (exact)"""
    ids = token_ids(n, 1000, seed)
    count, ds = dataset_items(student, ids, context, stride)
    want = len(ref.GPTDataset(ids, context, stride))
    if count != want:
        raise AssertionError(f"GPTDataset of {n} tokens with context_length={context}, stride={stride} has {count} "
                             f"windows, expected {want}: keep every window whose targets fit inside the tokens")
    for i in range(count):
        check_window(ds.method("__getitem__")(i), i, ids, context, stride, "dataset")


@points(1)
@pytest.mark.exercise("gpt_dataset")
def test_dataset_edges(student):
    """too few tokens give no window; context_length + 1 tokens give exactly one; stride > context_length skips
    tokens (exact)"""
    ids = token_ids(20, 50, 3)
    for n, context, stride, want in ((5, 5, 1, 0), (6, 5, 3, 1), (20, 3, 5, 4), (20, 4, 16, 1), (20, 19, 1, 1),
                                     (1, 1, 1, 0)):
        count, ds = dataset_items(student, ids[:n], context, stride)
        if count != want:
            raise AssertionError(f"GPTDataset of {n} tokens, context_length={context}, stride={stride}: {count} "
                                 f"windows, expected {want}")
        for i in range(count):
            check_window(ds.method("__getitem__")(i), i, ids[:n], context, stride, "dataset")


def loader_batches(student, ids, **kw):
    out = student.create_dataloader.iterate(ids, mode="list", limit=2000, **kw)["items"]
    batches = []
    for b, batch in enumerate(out):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise AssertionError(f"batch {b} of create_dataloader(...) should be a pair (inputs, targets)")
        x = expect_tensor(batch[0], f"inputs of batch {b}", dtype=torch.long)
        y = expect_tensor(batch[1], f"targets of batch {b}", dtype=torch.long)
        if x.dim() != 2 or x.shape != y.shape or x.shape[1] != kw["context_length"]:
            raise AssertionError(f"batch {b} has inputs {tuple(x.shape)} and targets {tuple(y.shape)}; expected two "
                                 f"(batch_size, {kw['context_length']}) tensors")
        batches.append((x, y))
    return batches


loader_cfg = st.fixed_dictionaries({"n": st.integers(8, 60), "context": st.integers(1, 6), "stride": st.integers(1, 6),
                                    "batch": st.integers(1, 5)})


def kw_of(c, shuffle, drop_last, seed):
    return dict(batch_size=c["batch"], context_length=c["context"], stride=c["stride"], shuffle=shuffle,
                drop_last=drop_last, seed=seed)


@points(1)
@pytest.mark.exercise("gpt_dataset")
@graded(max_examples=12)
@given(c=loader_cfg, drop_last=st.booleans(), seed=seeds)
def test_dataloader_in_order(student, c, drop_last, seed):
    """shuffle=False: the batches are the dataset's windows in order, batch_size at a time, the last one
    partial unless drop_last (exact)"""
    ids = token_ids(c["n"], 300, seed)
    got = loader_batches(student, ids, **kw_of(c, False, drop_last, 0))
    want = list(ref.create_dataloader(ids, **kw_of(c, False, drop_last, 0)))
    if len(got) != len(want):
        raise AssertionError(f"create_dataloader(shuffle=False, drop_last={drop_last}) gave {len(got)} batches, "
                             f"expected {len(want)}")
    for b, ((x, y), (wx, wy)) in enumerate(zip(got, want)):
        if x.shape != wx.shape or not torch.equal(x, wx) or not torch.equal(y, wy):
            raise AssertionError(f"batch {b} of create_dataloader(shuffle=False) differs from the dataset's windows "
                                 f"{b * c['batch']}.. in order")


def window_keys(ids, c) -> list[tuple]:
    """The dataset's windows as (input, target) tuples, in order. Two windows can be equal (the same
    tokens twice in random ids), so batches are checked against this as a multiset, never by index."""
    ds = ref.GPTDataset(ids, c["context"], c["stride"])
    return [(tuple(x.tolist()), tuple(y.tolist())) for x, y in (ds[i] for i in range(len(ds)))]


def batch_keys(got) -> list[tuple]:
    return [(tuple(x[r].tolist()), tuple(y[r].tolist())) for x, y in got for r in range(x.shape[0])]


@points(1)
@pytest.mark.exercise("gpt_dataset")
@graded(max_examples=10)
@given(c=loader_cfg, seed=st.integers(0, 10_000))
def test_dataloader_shuffled(student, c, seed):
    """shuffle=True, drop_last=False: one pass holds every window exactly once, in an order that depends on
    the seed only (the same seed gives the same order; it is not always the dataset's order)"""
    ids = token_ids(max(c["n"], c["context"] + 12 * c["stride"]), 300, seed)  # at least 12 windows
    windows = window_keys(ids, c)
    count, known = len(windows), Counter(windows)
    orders = []
    for s in (seed, seed, seed + 1, seed + 2):
        got = loader_batches(student, ids, **kw_of(c, True, False, s))
        sizes = [x.shape[0] for x, _ in got]
        if sizes[:-1] != [c["batch"]] * (len(sizes) - 1) or not 0 < sizes[-1] <= c["batch"]:
            raise AssertionError(f"create_dataloader(batch_size={c['batch']}, shuffle=True, drop_last=False) gave "
                                 f"batches of sizes {sizes}")
        order = batch_keys(got)
        if any(key not in known for key in order):
            raise AssertionError("a shuffled batch holds a row that is not one of the dataset's windows")
        if Counter(order) != known:
            raise AssertionError(f"one shuffled pass should hold each of the {count} windows exactly once; it held "
                                 f"{len(order)} rows, some windows more often than the dataset has them")
        orders.append(order)
    if orders[0] != orders[1]:
        raise AssertionError("two loaders made with the same seed shuffled differently: build the shuffle from "
                             "torch.Generator().manual_seed(seed), not from the global random state")
    if all(o == windows for o in orders):
        raise AssertionError("shuffle=True left the windows in their original order")


@points(1)
@pytest.mark.exercise("gpt_dataset")
@graded(max_examples=10)
@given(c=loader_cfg, shuffle=st.booleans(), seed=st.integers(0, 10_000))
def test_dataloader_drop_last(student, c, shuffle, seed):
    """drop_last=True: len(windows) // batch_size full batches of distinct windows, shuffled or not"""
    ids = token_ids(c["n"], 300, seed)
    windows = window_keys(ids, c)
    count, known = len(windows), Counter(windows)
    got = loader_batches(student, ids, **kw_of(c, shuffle, True, seed))
    if len(got) != count // c["batch"] or any(x.shape[0] != c["batch"] for x, _ in got):
        raise AssertionError(f"{count} windows, batch_size={c['batch']}, drop_last=True: expected "
                             f"{count // c['batch']} full batches, got sizes {[x.shape[0] for x, _ in got]}")
    seen = Counter(batch_keys(got))
    if any(n > known[key] for key, n in seen.items()):
        raise AssertionError("the batches should hold distinct windows of the dataset")


# ----------------------------------------------------------------------------------------------- AdamW
adam_hp = st.fixed_dictionaries({
    "lr": st.sampled_from([1e-3, 1e-2, 0.1]), "betas": st.sampled_from([(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)]),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]), "weight_decay": st.sampled_from([0.0, 0.01, 0.1, 0.5]),
})
param_shapes = st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=2), min_size=1, max_size=3)


def adam_tol(values, lr: float, steps: int) -> float:
    """Rounding of float32 weights and moments, step after step: f32_tol(steps * (|p| + 4 lr))."""
    return f32_tol(steps * (max(float(v.abs().max()) for v in values) + 4 * lr))


def run_adamw(student, device, init, requires_grad, hp, grads_per_step, label):
    """The student's AdamW and the reference (float64) on the same weights and gradients; compares the
    weights after every step. ``grads_per_step[s][i]`` is a tensor or None (no gradient)."""
    box = student.part("ParamBox", init, requires_grad, device)
    opt = student.AdamW(box, **hp)
    ours = [torch.nn.Parameter(v.double(), requires_grad=r) for v, r in zip(init, requires_grad)]
    reference = ref.AdamW(ours, **hp)
    for step, grads in enumerate(grads_per_step):
        box.method("set_grads")(grads)
        for p, g in zip(ours, grads):
            p.grad = None if g is None else g.double()
        opt.method("step")()
        reference.step()
        got = box.method("values")()
        tol = adam_tol(init, hp["lr"], step + 1)
        for i, (value, want) in enumerate(zip(got, ours)):
            pattern = "".join("g" if g is not None and g.abs().sum() > 0 else ("0" if g is not None else "-")
                              for g in (s[i] for s in grads_per_step[: step + 1]))
            assert_close(value, want.detach(), atol=tol,
                         what=f"{label}: parameter {i} after step {step + 1} (its gradients so far: {pattern}; "
                              "g = gradient, 0 = zeros, - = None)")
    return box, opt


@points(3)
@pytest.mark.exercise("adamw")
@graded(max_examples=15)
@given(hp=adam_hp, shapes=param_shapes, steps=st.integers(1, 4), seed=seeds, scale=st.sampled_from([1e-3, 1.0, 100.0]))
def test_adamw_matches_reference(student, device, hp, shapes, steps, seed, scale):
    """weights after each of up to 4 steps equal the reference's for any lr, betas, eps and weight_decay
    (tolerance f32_tol(steps * (|p| + 4 lr)))"""
    init = [randn(s, seed + i) for i, s in enumerate(shapes)]
    grads = [[randn(s, seed * 3 + 101 * step + i, scale) for i, s in enumerate(shapes)] for step in range(steps)]
    run_adamw(student, device, init, [True] * len(shapes), hp, grads, f"AdamW({hp})")


@points(2)
@pytest.mark.exercise("adamw")
@graded(max_examples=12)
@given(hp=adam_hp, shapes=param_shapes, steps=st.integers(2, 5), seed=seeds, data=st.data())
def test_adamw_missing_zero_and_frozen(student, device, hp, shapes, steps, seed, data):
    """a parameter whose .grad is None is skipped entirely (no decay, its own step count does not advance); a
    zero gradient still counts as a step; a frozen parameter (requires_grad=False) never changes
    (tolerance f32_tol(steps * (|p| + 4 lr)))"""
    init = [randn(s, seed + i) for i, s in enumerate(shapes)] + [randn((3,), seed + 77)]
    kinds = data.draw(st.lists(st.lists(st.sampled_from(["grad", "none", "zero"]), min_size=len(shapes),
                                        max_size=len(shapes)), min_size=steps, max_size=steps), label="gradients")
    grads = [[None if k == "none" else (torch.zeros(s) if k == "zero" else randn(s, seed * 5 + 31 * step + i))
              for i, (k, s) in enumerate(zip(row, shapes))] + [None] for step, row in enumerate(kinds)]
    box, _ = run_adamw(student, device, init, [True] * len(shapes) + [False],
                       dict(hp, weight_decay=max(hp["weight_decay"], 0.1)), grads, "AdamW")
    if not torch.equal(box.method("values")()[-1], init[-1]):
        raise AssertionError("AdamW changed a frozen parameter (requires_grad=False, .grad is None)")


@points(2)
@pytest.mark.exercise("adamw")
@graded(max_examples=8)
@given(seed=seeds, lrs=st.lists(st.sampled_from([None, 0.002, 0.02, 0.3]), min_size=2, max_size=5))
def test_adamw_param_groups_and_schedule(student, device, seed, lrs):
    """param groups with their own lr or weight_decay, default hyperparameters elsewhere, and learning rates
    changed in param_groups between steps (as train does) equal torch.optim.AdamW (tolerance
    f32_tol(steps * (|p| + 1.2)))"""
    a, b = randn((3, 2), seed), randn((4,), seed + 1)
    box_a, box_b = student.part("ParamBox", [a], None, device), student.part("ParamBox", [b], None, device)
    opt = student.AdamW([{"params": box_a, "weight_decay": 0.0}, {"params": box_b, "lr": 0.05}])
    pa, pb = torch.nn.Parameter(a.double()), torch.nn.Parameter(b.double())
    oracle = torch.optim.AdamW([{"params": [pa], "weight_decay": 0.0}, {"params": [pb], "lr": 0.05}], foreach=False)
    for step, lr in enumerate(lrs):
        if lr is not None:
            problem = student.part("set_lr", opt, lr)
            if problem:
                raise AssertionError(f"AdamW: {problem} (subclass torch.optim.Optimizer and pass the hyperparameters "
                                     "to super().__init__)")
            for group in oracle.param_groups:
                group["lr"] = lr
        ga, gb = randn((3, 2), seed + 10 * step + 2), randn((4,), seed + 10 * step + 3)
        box_a.method("set_grads")([ga])
        box_b.method("set_grads")([gb])
        pa.grad, pb.grad = ga.double(), gb.double()
        opt.method("step")()
        oracle.step()
        tol = f32_tol((step + 1) * (3 + 1.2))
        assert_close(box_a.method("values")()[0], pa.detach(), atol=tol,
                     what=f"parameter of group 0 (weight_decay=0.0) after step {step + 1}")
        assert_close(box_b.method("values")()[0], pb.detach(), atol=tol,
                     what=f"parameter of group 1 (lr=0.05 until changed) after step {step + 1}")


@points(1)
@pytest.mark.exercise("adamw")
@graded(max_examples=5)
@given(seed=seeds, hp=adam_hp)
def test_adamw_state_dict_round_trip(student, device, seed, hp):
    """the moments and step counts live in self.state: a fresh AdamW given another's state_dict() continues
    exactly like it (tolerance f32_tol(|p| + 4 lr))"""
    init = [randn((4,), seed), randn((2, 3), seed + 1)]
    first = student.part("ParamBox", init, None, device)
    opt_first = student.AdamW(first, **hp)
    for step in range(3):
        first.method("set_grads")([randn((4,), seed + 5 * step), randn((2, 3), seed + 5 * step + 1)])
        opt_first.method("step")()
    second = student.part("ParamBox", first.method("values")(), None, device)
    opt_second = student.AdamW(second, **hp)
    opt_second.method("load_state_dict")(opt_first.method("state_dict")())
    for step in range(2):
        grads = [randn((4,), seed + 50 + step), randn((2, 3), seed + 60 + step)]
        first.method("set_grads")(grads)
        second.method("set_grads")(grads)
        opt_first.method("step")()
        opt_second.method("step")()
    for i, (x, y) in enumerate(zip(second.method("values")(), first.method("values")())):
        assert_close(x, y, atol=f32_tol(float(y.abs().max()) + 4 * hp["lr"]),
                     what=f"parameter {i} of the optimizer that loaded the state_dict (keep m, v and the step count "
                          "in self.state[p])")


# ------------------------------------------------------------------------------------------- lr_at_step
def lr(student, *args) -> float:
    return number(student.lr_at_step(*args), f"lr_at_step{args}")


@points(2)
@pytest.mark.exercise("lr_at_step")
@graded(max_examples=40)
@given(total=st.integers(1, 200), data=st.data(), max_lr=st.floats(1e-5, 1.0),
       frac=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_lr_matches_reference(student, total, data, max_lr, frac):
    """linear warm-up from 0, cosine decay to min_lr, min_lr after total_steps (relative tolerance 1e-9)"""
    warmup = data.draw(st.integers(0, total), label="warmup_steps")
    step = data.draw(st.integers(0, total + 20), label="step")
    min_lr = max_lr * frac
    got, want = lr(student, step, max_lr, min_lr, warmup, total), ref.lr_at_step(step, max_lr, min_lr, warmup, total)
    if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12 * max_lr):
        phase = "warm-up" if step < warmup else ("after total_steps" if step >= total else "cosine decay")
        raise AssertionError(f"lr_at_step(step={step}, warmup_steps={warmup}, total_steps={total}) is wrong during "
                             f"the {phase}: off by {abs(got - want) / max_lr:.2g} * max_lr")


@points(1)
@pytest.mark.exercise("lr_at_step")
def test_lr_warmup_boundaries(student):
    """warm-up: step 0 gives 0, step k gives max_lr * k / warmup_steps, step warmup_steps gives max_lr (1e-12)"""
    for step, want in ((0, 0.0), (1, 0.3), (5, 1.5), (9, 2.7), (10, 3.0)):
        got = lr(student, step, 3.0, 0.3, 10, 110)
        if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12):
            early = math.isclose(got, 3.0 * (step + 1) / 10)
            hint = " (off by one: the warm-up starts at 0 for step 0)" if early else ""
            raise AssertionError(f"lr_at_step({step}, max_lr=3, min_lr=0.3, warmup_steps=10, total_steps=110) is "
                                 f"wrong{hint}")


@points(1)
@pytest.mark.exercise("lr_at_step")
def test_lr_decay_end_and_no_warmup(student):
    """half way through the decay gives (max_lr + min_lr) / 2; total_steps and later give min_lr;
    warmup_steps = 0 starts at max_lr (1e-12)"""
    cases = [((60, 3.0, 0.3, 10, 110), 1.65, "half way through the cosine"),
             ((110, 3.0, 0.3, 10, 110), 0.3, "at total_steps"),
             ((1000, 3.0, 0.3, 10, 110), 0.3, "after total_steps"),
             ((0, 2.0, 0.0, 0, 50), 2.0, "step 0 without warm-up"),
             ((25, 2.0, 0.0, 0, 50), 1.0, "half way without warm-up"),
             ((7, 1.0, 0.25, 7, 7), 0.25, "warm-up as long as the run")]
    for args, want, what in cases:
        got = lr(student, *args)
        if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12):
            raise AssertionError(f"lr_at_step{args} ({what}) is wrong")


# -------------------------------------------------------------------------------------- clip_grad_norm_
def clip_case(student, device, shapes, grads, max_norm):
    box = student.part("ParamBox", [torch.zeros(s) for s in shapes], None, device)
    box.method("set_grads")(grads)
    norm = student.clip_grad_norm_(box, max_norm)
    return norm, box.method("grads")()


def torch_clip(shapes, grads, max_norm):
    params = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.double()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(norm), [p.grad for p in params]


def check_clipped(got, want, scale, what):
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            if g is not None:
                raise AssertionError(f"{what}: parameter {i} had no gradient but has one now")
            continue
        assert_close(g, w, atol=f32_tol(scale), what=f"{what}: gradient {i}")


clip_cases = st.fixed_dictionaries({"shapes": param_shapes.map(lambda s: s + [[3]]), "seed": seeds,
                                    "scale": st.sampled_from([1e-3, 1.0, 50.0]),
                                    "max_norm": st.sampled_from([0.01, 0.5, 1.0, 10.0])})


def clip_grads(c, data):
    present = data.draw(st.lists(st.booleans(), min_size=len(c["shapes"]) - 1, max_size=len(c["shapes"]) - 1),
                        label="which parameters have gradients") + [True]
    return [randn(s, c["seed"] + i, c["scale"]) if keep else None
            for i, (s, keep) in enumerate(zip(c["shapes"], present))]


@points(2)
@pytest.mark.exercise("clip_grad_norm")
@graded(max_examples=15)
@given(c=clip_cases, data=st.data())
def test_clip_matches_pytorch(student, device, c, data):
    """every gradient is scaled by min(1, max_norm / (total_norm + 1e-6)), the norm taken over all gradients
    together; parameters without a gradient are skipped (tolerance f32_tol(|g|))"""
    grads = clip_grads(c, data)
    _, got = clip_case(student, device, c["shapes"], grads, c["max_norm"])
    _, want = torch_clip(c["shapes"], grads, c["max_norm"])
    check_clipped(got, want, max(float(g.abs().max()) for g in grads if g is not None),
                  f"clip_grad_norm_(max_norm={c['max_norm']})")


@points(1)
@pytest.mark.exercise("clip_grad_norm")
@graded(max_examples=15)
@given(c=clip_cases, data=st.data())
def test_clip_returns_total_norm(student, device, c, data):
    """returns the global L2 norm of the gradients before clipping, as a float or a one-element tensor
    (relative tolerance 1e-5)"""
    grads = clip_grads(c, data)
    norm, _ = clip_case(student, device, c["shapes"], grads, c["max_norm"])
    want, _ = torch_clip(c["shapes"], grads, c["max_norm"])
    got = number(norm, "the value clip_grad_norm_ returns")
    if not math.isclose(got, want, rel_tol=1e-5):
        after = math.isclose(got, min(want, c["max_norm"]), rel_tol=1e-5)
        raise AssertionError("clip_grad_norm_ returned the wrong total norm" +
                             (" (the norm after clipping; return the one before)" if after else ""))


@points(1)
@pytest.mark.exercise("clip_grad_norm")
def test_clip_edge_cases(student, device):
    """no gradients at all returns 0; zero gradients stay zero (no NaN); a norm below max_norm leaves the
    gradients unchanged (tolerance f32_tol(1))"""
    norm, got = clip_case(student, device, [[2], [3]], [None, None], 1.0)
    if number(norm, "clip_grad_norm_ with no gradients") != 0.0 or got != [None, None]:
        raise AssertionError("clip_grad_norm_ over parameters without gradients should return 0 and change nothing")
    norm, got = clip_case(student, device, [[2], [3]], [torch.zeros(2), torch.zeros(3)], 1.0)
    if number(norm, "clip_grad_norm_ of zero gradients") != 0.0:
        raise AssertionError("clip_grad_norm_ of zero gradients should return 0")
    check_clipped(got, [torch.zeros(2), torch.zeros(3)], 1.0, "zero gradients")
    grads = [torch.tensor([0.3, -0.4]), torch.tensor([0.0, 0.5, 0.1])]
    norm, got = clip_case(student, device, [[2], [3]], grads, 1.0)
    check_clipped(got, grads, 1.0, "gradients with a norm below max_norm")


# ----------------------------------------------------------------------------------------------- train
def gpt_cfg(vocab, context, heads, head_dim, layers):
    return {"vocab_size": vocab, "context_length": context, "emb_dim": heads * head_dim, "n_heads": heads,
            "n_layers": layers, "drop_rate": 0.0, "qkv_bias": False}


def kit_model(student, cfg, seed, device, kind="GPTModel"):
    """The kit's GPT in the worker, holding the reference's initial weights; and those weights."""
    torch.manual_seed(seed % 100_000)
    state = {n: p.detach().float().clone() for n, p in ref_gpt.GPTModel(cfg).named_parameters()}
    model = student.part(kind, cfg)
    model.load_parameters(state)
    if device != "cpu":
        student.part("to_device", model, device)
    return model, state


def kit_loader(student, ids, batch_size, context_length, stride, shuffle, drop_last, seed):
    """A data loader in the worker over the windows the reference cuts (what ``create_dataloader`` gives)."""
    windows = ref.GPTDataset(ids, context_length, stride)
    inputs = torch.stack(windows.inputs) if len(windows) else torch.empty(0, context_length, dtype=torch.long)
    targets = torch.stack(windows.targets) if len(windows) else torch.empty(0, context_length, dtype=torch.long)
    return student.part("window_loader", inputs, targets, batch_size, shuffle, drop_last, seed)


def local_model(cfg, state):
    """The same model code and weights here, for the reference run."""
    model = kit_gpt.GPTModel(cfg)
    model.load_state_dict(state)
    return model


def values(history, key, n, what):
    if key not in history:
        raise AssertionError(f"train's history has no '{key}' entry (keys: {sorted(map(str, history))})")
    got = history[key]
    if not isinstance(got, (list, tuple)):
        raise AssertionError(f"history['{key}'] should be a list, got {type(got).__name__}")
    if len(got) != n:
        raise AssertionError(f"history['{key}'] has {len(got)} entries, expected {n} ({what})")
    return [number(v, f"history['{key}'][{i}]") for i, v in enumerate(got)]


def check_history(got, want, tol, num_steps, eval_every):
    if not isinstance(got, dict):
        raise AssertionError(f"train should return a dict (the history), got {type(got).__name__}")
    evals = num_steps // eval_every
    for key, n, what in (("train_loss", num_steps, "one per step"), ("lr", num_steps, "one per step"),
                         ("tokens_seen", num_steps, "one per step"),
                         ("val_loss", evals, f"one per evaluation, after every {eval_every} steps")):
        have = values(got, key, n, what)
        for i, (a, b) in enumerate(zip(have, want[key])):
            if key == "tokens_seen":
                ok = a == b
            elif key == "lr":
                ok = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
            else:
                ok = abs(a - b) <= tol["loss"] * max(1.0, abs(b))
            if not ok:
                where = f"evaluation {i + 1} (after step {(i + 1) * eval_every})" if key == "val_loss" else f"step {i}"
                raise AssertionError(f"history['{key}'] is wrong at {where}" +
                                     ("" if key == "tokens_seen" else f" (off by {abs(a - b):.3g})"))


def check_parameters(got: dict, want: dict, start: dict, rel: float, what: str) -> None:
    moved = math.sqrt(sum(float(((want[n].double() - start[n].double()) ** 2).sum()) for n in want))
    errors = {n: float(((got[n].double() - want[n].double()) ** 2).sum()) for n in want}
    diff = math.sqrt(sum(errors.values()))
    if not diff <= rel * max(moved, 1e-12):
        worst = max(errors, key=errors.get)
        raise AssertionError(f"{what}: the trained weights differ from the reference run by {diff / moved:.3g} of the "
                             f"size of its whole update (tolerance {rel:g}); most in {worst}")


train_cases = st.fixed_dictionaries({
    "vocab": st.integers(5, 24), "context": st.integers(3, 8), "heads": st.integers(2, 3),
    "head_dim": st.integers(4, 8), "layers": st.integers(1, 2), "batch": st.integers(1, 4), "stride": st.integers(1, 8),
    "windows": st.integers(1, 5),
    "shuffle": st.booleans(), "drop_last": st.booleans(), "num_steps": st.integers(4, 16),
    "eval_every": st.integers(1, 6), "eval_batches": st.integers(1, 3), "accum": st.integers(1, 3),
    "max_lr": st.sampled_from([1e-3, 5e-3, 2e-2]), "min_frac": st.sampled_from([0.0, 0.1]),
    "warmup": st.sampled_from([0.0, 0.25, 0.5]), "clip": st.sampled_from([None, 0.05, 0.5, 1.0]),
    "weight_decay": st.sampled_from([0.0, 0.1]),
})


def train_kwargs(c, device):
    return dict(num_steps=c["num_steps"], eval_every=c["eval_every"], eval_batches=c["eval_batches"],
                grad_accum_steps=c["accum"], max_lr=c["max_lr"], min_lr=c["max_lr"] * c["min_frac"],
                warmup_steps=int(c["warmup"] * c["num_steps"]), max_grad_norm=c["clip"], device=device)


@points(4)
@pytest.mark.exercise("train")
@graded(max_examples=8)
@given(c=train_cases, seed=seeds)
def test_train_matches_reference(student, device, c, seed):
    """a few dozen micro-batches with AdamW, warm-up and cosine schedule, accumulation, clipping and periodic
    evaluation: the same history (train_loss, lr, tokens_seen, val_loss) and weights as the reference loop
    (CPU: 1e-4 of the update, losses 1e-4; CUDA: 2e-2 and 2e-3)"""
    cfg = gpt_cfg(c["vocab"], c["context"], c["heads"], c["head_dim"], c["layers"])
    n_windows = c["batch"] * c["windows"] + (0 if c["drop_last"] else seed % c["batch"])
    ids = token_ids(c["context"] + 1 + c["stride"] * (n_windows - 1), c["vocab"], seed)
    val = token_ids(c["context"] * 5 + 1, c["vocab"], seed + 1)
    loader = dict(batch_size=c["batch"], context_length=c["context"], stride=c["stride"], shuffle=c["shuffle"],
                  drop_last=c["drop_last"], seed=seed % 1000)
    val_loader = dict(batch_size=2, context_length=c["context"], stride=c["context"], shuffle=False, drop_last=False,
                      seed=0)
    opt_kw = dict(lr=c["max_lr"], weight_decay=c["weight_decay"])
    model, state = kit_model(student, cfg, seed, device)
    history = student.train.using(*SWAP)(
        model, kit_loader(student, ids, **loader), kit_loader(student, val, **val_loader),
        student.part("TorchAdamW", model, **opt_kw), **train_kwargs(c, device))

    mine = local_model(cfg, state)
    want = ref.train(mine, ref.create_dataloader(ids, **loader), ref.create_dataloader(val, **val_loader),
                     torch.optim.AdamW(mine.parameters(), foreach=False, **opt_kw), **train_kwargs(c, "cpu"))
    tol = tolerance(device)
    check_history(history, want, tol, c["num_steps"], c["eval_every"])
    check_parameters(student.part("model_state", model), {n: p.detach() for n, p in mine.named_parameters()}, state,
                     tol["params"], "train")


@points(2)
@pytest.mark.exercise("train")
@graded(max_examples=5)
@given(seed=seeds, batch=st.integers(1, 3), accum=st.integers(2, 4), epoch=st.integers(1, 3),
       num_steps=st.integers(3, 7))
def test_train_accumulation_equals_bigger_batch(student, device, seed, batch, accum, epoch, num_steps):
    """grad_accum_steps = k over micro-batches of b gives the history and weights of one step per batch of k * b
    (plain SGD, whose update is proportional to the gradient; no clipping) (CPU: 1e-4; CUDA: 2e-2)"""
    cfg = gpt_cfg(11, 5, 2, 4, 1)
    ids = token_ids(5 * batch * accum * epoch + 1, 11, seed)
    val = token_ids(21, 11, seed + 1)
    small = dict(batch_size=batch, context_length=5, stride=5, shuffle=False, drop_last=True, seed=0)
    big = dict(small, batch_size=batch * accum)
    val_loader = dict(batch_size=2, context_length=5, stride=5, shuffle=False, drop_last=False, seed=0)
    kw = dict(num_steps=num_steps, eval_every=num_steps, eval_batches=2, max_lr=0.3, min_lr=0.03, warmup_steps=1,
              max_grad_norm=1e6)
    model, state = kit_model(student, cfg, seed, device)
    history = student.train.using(*SWAP)(
        model, kit_loader(student, ids, **small), kit_loader(student, val, **val_loader),
        student.part("TorchSGD", model), grad_accum_steps=accum, device=device, **kw)

    mine = local_model(cfg, state)
    want = ref.train(mine, ref.create_dataloader(ids, **big), ref.create_dataloader(val, **val_loader),
                     torch.optim.SGD(mine.parameters(), lr=0.3), grad_accum_steps=1, **kw)
    tol = tolerance(device)
    check_history(history, want, tol, num_steps, num_steps)
    check_parameters(student.part("model_state", model), {n: p.detach() for n, p in mine.named_parameters()}, state,
                     tol["params"], f"train with grad_accum_steps={accum} (divide each micro-batch loss by it)")


def describe(entry):
    return "a training micro-batch" if entry[0] != 3 else "an evaluation batch"


@points(2)
@pytest.mark.exercise("train")
@graded(max_examples=5)
@given(seed=seeds, batch=st.sampled_from([1, 2, 4]), num_steps=st.integers(3, 10), eval_every=st.integers(1, 4),
       eval_batches=st.integers(1, 4), accum=st.integers(1, 2))
def test_train_modes_and_evaluation_batches(student, device, seed, batch, num_steps, eval_every, eval_batches, accum):
    """every training forward pass runs in training mode (model.train(), also after each evaluation) and
    every evaluation forward pass in eval mode, on the first eval_batches batches of val_loader"""
    cfg = gpt_cfg(9, 4, 1, 4, 1)
    model, _ = kit_model(student, cfg, seed, device, kind="RecordingGPTModel")
    model.method("eval")()  # train() must switch it to training mode itself
    ids = token_ids(4 * batch * 3 + 1, 9, seed)
    val = token_ids(4 * 9 + 1, 9, seed + 1)  # 9 windows: 3 evaluation batches of 3
    student.train.using(*SWAP)(
        model, kit_loader(student, ids, batch_size=batch, context_length=4, stride=4, shuffle=True,
                            drop_last=True, seed=seed % 1000),
        kit_loader(student, val, batch_size=3, context_length=4, stride=4, shuffle=False, drop_last=False,
                     seed=0),
        student.part("TorchAdamW", model, lr=0.01), num_steps=num_steps, eval_every=eval_every,
        eval_batches=eval_batches, grad_accum_steps=accum, max_lr=0.01, min_lr=0.001, warmup_steps=1, device=device)
    log = [(size, training) for size, training, _ in student.part("forward_log", model)]
    want = []
    for step in range(num_steps):
        want += [(batch, True)] * accum
        if (step + 1) % eval_every == 0:
            want += [(3, False)] * min(eval_batches, 3)
    for i, (got, expected) in enumerate(zip(log, want)):
        if got[0] != expected[0]:
            raise AssertionError(f"forward pass {i + 1} was {describe(got)}, expected {describe(expected)} (count "
                                 f"the micro-batches of each step and the batches of each evaluation)")
        if got[1] != expected[1]:
            mode = "training" if got[1] else "eval"
            raise AssertionError(f"forward pass {i + 1}, {describe(got)}, ran in {mode} mode: training needs "
                                 "model.train() (also after every evaluation), evaluation model.eval()")
    if len(log) != len(want):
        raise AssertionError(f"train ran {len(log)} forward passes, expected {len(want)} ({num_steps} steps x {accum} "
                             f"micro-batches, plus {min(eval_batches, 3)} batches per evaluation)")


E2E = {"steps": 100, "below": 2.6, "cfg": {"context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 1,
                                             "drop_rate": 0.0, "qkv_bias": False}}


@points(2)
@pytest.mark.exercise("train")
def test_train_end_to_end_on_the_corpus(student, device):
    """100 steps on the kit's corpus (characters, batch 8 x 32, AdamW 1e-2 with warm-up and cosine) bring a
    1-layer model's validation loss, measured by the kit, below 2.6 nats (guessing uniformly: 3.93; the best
    unigram model: 2.99), and the history reports that loss"""
    text = CORPUS.read_text(encoding="ascii")
    tok = ref.CharTokenizer(text)
    ids = torch.tensor(tok.encode(text))
    split = int(0.9 * len(ids))
    cfg = dict(E2E["cfg"], vocab_size=tok.vocab_size)
    model, _ = kit_model(student, cfg, 0, device)
    val_loader = kit_loader(student, ids[split:], batch_size=32, context_length=32, stride=32,
                              shuffle=False, drop_last=False, seed=0)
    history, _ = student.train.using(*SWAP).timed(
        model, kit_loader(student, ids[:split], batch_size=8, context_length=32, stride=32, shuffle=True,
                            drop_last=True, seed=0),
        val_loader, student.part("TorchAdamW", model, lr=1e-2, weight_decay=0.1), num_steps=E2E["steps"], eval_every=25,
        eval_batches=4, max_lr=1e-2, min_lr=1e-3, warmup_steps=10, max_grad_norm=1.0, device=device, timeout=90)
    if not isinstance(history, dict):
        raise AssertionError(f"train should return a dict (the history), got {type(history).__name__}")
    reported = values(history, "val_loss", 4, "one per evaluation, after every 25 steps")[-1]
    measured = student.part("evaluate", model, val_loader, 4, device)  # the kit measures the trained model itself
    if not measured < E2E["below"]:
        raise AssertionError(f"after {E2E['steps']} steps the validation loss is {measured:.3f}, not below "
                             f"{E2E['below']} (the reference loop reaches about 2.3)")
    if not abs(reported - measured) <= tolerance(device)["loss"] * 10 * max(1.0, measured):
        raise AssertionError(f"the last val_loss in the history ({reported:.4f}) is not the validation loss of the "
                             f"trained model on the first 4 batches ({measured:.4f})")


# ----------------------------------------------------------------------------------------- checkpoints
CKPT_CFG = gpt_cfg(11, 6, 2, 4, 1)
CKPT_RUN = dict(batch_size=2, context_length=6, max_lr=0.02, min_lr=0.002, warmup_steps=2)


def kit_run(student, model, opt, ids, start, stop, total, device):
    """The kit's loop (in the worker) for steps start..stop-1 of a ``total``-step cosine schedule."""
    windows = ref.GPTDataset(ids, CKPT_RUN["context_length"], CKPT_RUN["context_length"])
    lrs = [ref.lr_at_step(s, CKPT_RUN["max_lr"], CKPT_RUN["min_lr"], CKPT_RUN["warmup_steps"], total)
           for s in range(start, stop)]
    return student.part("run_steps", model, opt, torch.stack(windows.inputs), torch.stack(windows.targets),
                        CKPT_RUN["batch_size"], start, lrs, device)


def kit_pair(student, seed, device):
    model, _ = kit_model(student, CKPT_CFG, seed, device)
    return model, student.part("TorchAdamW", model, lr=0.02, weight_decay=0.1)


def save(student, path, model, opt, step):
    student.save_checkpoint(path, model, opt, step)
    if student.part("file_size", path) <= 0:
        raise AssertionError("save_checkpoint(path, ...) wrote no file at path: write the checkpoint with torch.save")


def load_step(student, path, model, opt, want):
    step = student.load_checkpoint(path, model, opt)
    if isinstance(step, bool) or not isinstance(step, int):
        raise AssertionError(f"load_checkpoint should return the saved step as an int, got {type(step).__name__}")
    if step != want:
        raise AssertionError(f"load_checkpoint returned step {step}; the checkpoint was saved at step {want}")


def same_state(got: dict, want: dict, device, what: str) -> None:
    if set(got) != set(want):
        raise AssertionError(f"{what}: the parameter names differ")
    if tolerance(device) is TOLERANCE["cpu"]:
        for name in want:
            if not torch.equal(got[name], want[name]):
                raise AssertionError(f"{what}: {name} differs (on CPU a checkpoint must restore weights and "
                                     "optimizer state exactly)")
    else:
        zero = {n: torch.zeros_like(p) for n, p in want.items()}
        check_parameters(got, want, zero, 1e-3, what)


@points(1)
@pytest.mark.exercise("checkpoint")
@graded(max_examples=3)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_checkpoint_round_trip(student, device, seed, k):
    """after save_checkpoint at step k, load_checkpoint into a model with other weights restores them exactly
    and returns k"""
    ids = token_ids(120, 11, seed)
    a, opt_a = kit_pair(student, seed, device)
    kit_run(student, a, opt_a, ids, 0, k, 10, device)
    path = f"w04-round-trip-{seed}-{k}.pt"
    save(student, path, a, opt_a, k)
    b, opt_b = kit_pair(student, seed + 1, device)
    load_step(student, path, b, opt_b, k)
    same_state(student.part("model_state", b), student.part("model_state", a), device, "the loaded model")


@points(2)
@pytest.mark.exercise("checkpoint")
@graded(max_examples=3)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), more=st.integers(2, 5))
def test_checkpoint_resume_equals_uninterrupted(student, device, seed, k, more):
    """a fresh model and optimizer resumed from the checkpoint of step k train on exactly like the run that
    never stopped (the optimizer's moments and step counts must be saved too)"""
    ids = token_ids(120, 11, seed)
    total = k + more
    a, opt_a = kit_pair(student, seed, device)
    kit_run(student, a, opt_a, ids, 0, k, total, device)
    path = f"w04-resume-{seed}-{k}.pt"
    save(student, path, a, opt_a, k)
    straight = kit_run(student, a, opt_a, ids, k, total, total, device)
    b, opt_b = kit_pair(student, seed + 1, device)
    load_step(student, path, b, opt_b, k)
    resumed = kit_run(student, b, opt_b, ids, k, total, total, device)
    exact = tolerance(device) is TOLERANCE["cpu"]
    for i, (x, y) in enumerate(zip(resumed, straight)):
        if (x != y) if exact else abs(x - y) > 2e-3 * max(1.0, abs(y)):
            raise AssertionError(f"the resumed run's loss at step {k + i} differs from the uninterrupted run's: is the "
                                 "optimizer state (exp_avg, exp_avg_sq, step) saved and loaded?")
    same_state(student.part("model_state", b), student.part("model_state", a), device, "the resumed model")


@points(1)
@pytest.mark.exercise("checkpoint")
@graded(max_examples=2)
@given(seed=st.integers(0, 10_000))
def test_checkpoint_is_a_snapshot_in_its_file(student, device, seed):
    """a checkpoint is the state at the time of saving, kept in the file it names: after saving at steps 3
    and 6 and exchanging the two files, each path loads the other step's weights"""
    ids = token_ids(120, 11, seed)
    a, opt_a = kit_pair(student, seed, device)
    kit_run(student, a, opt_a, ids, 0, 3, 8, device)
    first, second = f"w04-snapshot-{seed}-a.pt", f"w04-snapshot-{seed}-b.pt"
    save(student, first, a, opt_a, 3)
    at_3 = student.part("model_state", a)
    kit_run(student, a, opt_a, ids, 3, 6, 8, device)
    save(student, second, a, opt_a, 6)
    student.part("swap_files", first, second)
    b, opt_b = kit_pair(student, seed + 1, device)
    load_step(student, first, b, opt_b, 6)
    same_state(student.part("model_state", b), student.part("model_state", a), device,
               "the model loaded from the file now holding step 6")
    load_step(student, second, b, opt_b, 3)
    same_state(student.part("model_state", b), at_3, device, "the model loaded from the file now holding step 3 "
               "(training went on after it was saved)")


@points(1)
@pytest.mark.exercise("checkpoint")
@pytest.mark.requires_device("cuda")
def test_checkpoint_from_gpu_resumes_on_cpu(student, device):
    """a checkpoint saved from a model on the GPU loads into a model and optimizer on the CPU, which then train
    on like the GPU run (tolerance 2e-3 on the losses, 1e-2 of the weights)"""
    ids = token_ids(120, 11, 5)
    a, opt_a = kit_pair(student, 5, device)
    kit_run(student, a, opt_a, ids, 0, 3, 8, device)
    save(student, "w04-gpu.pt", a, opt_a, 3)
    straight = kit_run(student, a, opt_a, ids, 3, 8, 8, device)
    b, opt_b = kit_pair(student, 6, "cpu")
    load_step(student, "w04-gpu.pt", b, opt_b, 3)
    resumed = kit_run(student, b, opt_b, ids, 3, 8, 8, "cpu")
    if any(abs(x - y) > 2e-3 * max(1.0, abs(y)) for x, y in zip(resumed, straight)):
        raise AssertionError("the CPU run resumed from a GPU checkpoint does not continue like the GPU run")
    zero = {n: torch.zeros_like(p) for n, p in student.part("model_state", a).items()}
    check_parameters(student.part("model_state", b), student.part("model_state", a), zero, 1e-2, "the resumed model")
