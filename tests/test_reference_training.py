"""The week-4 reference (``reference/training.py``) against independent oracles: PyTorch's
``F.cross_entropy``, ``torch.optim.AdamW``, ``clip_grad_norm_`` and ``CosineAnnealingLR``; resuming from a
checkpoint equals an uninterrupted run; and the worker's trusted stand-ins (``sandbox/parts/training.py``)
equal the reference."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autograder.sandbox.parts import gpt as parts_gpt
from autograder.sandbox.parts import training as parts
from autograder.sandbox.parts import training_tools as tools
from reference import gpt as ref_gpt
from reference import training as ref

torch.set_num_threads(1)
quick = settings(max_examples=40, deadline=None, derandomize=True, database=None)
seeds = st.integers(0, 2**31 - 1)


def randn(shape, seed, scale=1.0, dtype=torch.float64):
    return (torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale)


# ------------------------------------------------------------------------------------------ cross_entropy
@quick
@given(lead=st.lists(st.integers(1, 5), min_size=1, max_size=2), vocab=st.integers(1, 12), seed=seeds,
       scale=st.sampled_from([0.1, 1.0, 30.0]), ignore_index=st.sampled_from([-100, -1, 0]),
       ignored=st.floats(0.0, 1.0))
def test_cross_entropy_equals_pytorch(lead, vocab, seed, scale, ignore_index, ignored):
    logits = randn(lead + [vocab], seed, scale).requires_grad_(True)
    g = torch.Generator().manual_seed(seed + 1)
    targets = torch.randint(0, vocab, tuple(lead), generator=g)
    targets[torch.rand(tuple(lead), generator=g) < ignored] = ignore_index
    ours = ref.cross_entropy(logits, targets, ignore_index=ignore_index)
    theirs = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=ignore_index)
    assert ours.shape == () and ours.dtype == torch.float64
    if bool((targets == ignore_index).all()):  # nothing left to average: both give 0/0
        assert torch.isnan(ours) and torch.isnan(theirs)
        return
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shift", [1e3, -1e3, 1e4, 88.8])
def test_cross_entropy_is_stable_in_float32(shift):
    logits = randn((4, 7), 3, 3.0, torch.float32)
    targets = torch.tensor([0, 6, 3, 2])
    ours = ref.cross_entropy(logits + shift, targets)
    assert torch.isfinite(ours)
    # float32 keeps ~7 digits of numbers near |shift|: 32 units in the last place at that size
    tol = 32 * torch.finfo(torch.float32).eps * abs(shift)
    torch.testing.assert_close(ours.double(), F.cross_entropy((logits + shift).double(), targets), rtol=0, atol=tol)


def test_perplexity():
    assert ref.perplexity(0.0) == 1.0
    assert ref.perplexity(torch.tensor(math.log(51.0))) == pytest.approx(51.0, rel=1e-6)
    assert isinstance(ref.perplexity(torch.tensor(2.0)), float)


# ---------------------------------------------------------------------------------------------- data
@quick
@given(n=st.integers(0, 40), context=st.integers(1, 9), stride=st.integers(1, 11), seed=seeds)
def test_dataset_windows_equal_unfold(n, context, stride, seed):
    ids = torch.randint(0, 500, (n,), generator=torch.Generator().manual_seed(seed))
    ds = ref.GPTDataset(ids.tolist(), context, stride)
    if n <= context:
        assert len(ds) == 0
        return
    windows = ids.unfold(0, context + 1, stride)  # every full window of context + 1 tokens
    assert len(ds) == windows.shape[0] == (n - context - 1) // stride + 1
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == y.dtype == torch.long
        assert torch.equal(x, windows[i, :-1]) and torch.equal(y, windows[i, 1:])


@quick
@given(n=st.integers(0, 60), context=st.integers(1, 6), stride=st.integers(1, 7), batch=st.integers(1, 5),
       shuffle=st.booleans(), drop_last=st.booleans(), seed=seeds)
def test_parts_dataloader_equals_the_reference(n, context, stride, batch, shuffle, drop_last, seed):
    assume(n > context)  # no windows: a shuffling DataLoader refuses an empty dataset
    ids = torch.randint(0, 500, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    kw = dict(batch_size=batch, context_length=context, stride=stride, shuffle=shuffle, drop_last=drop_last, seed=seed)
    ours, kits = ref.create_dataloader(ids, **kw), parts.create_dataloader(ids, **kw)
    dataset = ref.GPTDataset(ids, context, stride)  # the windows the week-4 suite cuts for the tools' loader
    tools_loader = tools.window_loader(torch.stack(dataset.inputs), torch.stack(dataset.targets), batch, shuffle,
                                       drop_last, seed)
    for _ in range(2):  # two passes: the second reshuffles identically in all three
        a, b, c = list(ours), list(kits), list(tools_loader)
        assert len(a) == len(b) == len(c)
        for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(xa, xc) and torch.equal(ya, yc)


# ----------------------------------------------------------------------------------------------- AdamW
adam_cfg = st.fixed_dictionaries({
    "lr": st.sampled_from([1e-3, 1e-2, 0.1]), "betas": st.sampled_from([(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)]),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]), "weight_decay": st.sampled_from([0.0, 0.01, 0.1, 0.5]),
})


@quick
@given(cfg=adam_cfg, shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=2), min_size=1, max_size=3),
       steps=st.integers(1, 6), seed=seeds, scale=st.sampled_from([1e-3, 1.0, 100.0]), data=st.data())
def test_adamw_equals_pytorch(cfg, shapes, steps, seed, scale, data):
    """Same parameters, same gradients (some missing at some steps, one frozen parameter): same result."""
    init = [randn(s, seed + i) for i, s in enumerate(shapes)] + [randn((2,), seed + 99)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    ours[-1].requires_grad_(False)
    theirs[-1].requires_grad_(False)
    opt_ours, opt_theirs = ref.AdamW(ours, **cfg), torch.optim.AdamW(theirs, foreach=False, **cfg)
    for step in range(steps):
        has = data.draw(st.lists(st.sampled_from(["grad", "none", "zero"]), min_size=len(shapes),
                                 max_size=len(shapes)), label=f"grads at step {step}")
        for i, kind in enumerate(has):
            g = None if kind == "none" else (torch.zeros_like(init[i]) if kind == "zero" else
                                              randn(shapes[i], seed * 7 + step * 31 + i, scale))
            ours[i].grad = None if g is None else g.clone()
            theirs[i].grad = None if g is None else g.clone()
        opt_ours.step()
        opt_theirs.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)
    assert torch.equal(ours[-1].detach(), init[-1])  # frozen: never touched


def test_adamw_param_groups_and_lr_changes_equal_pytorch():
    a, b = randn((3, 2), 1), randn((4,), 2)
    ours = [torch.nn.Parameter(a.clone()), torch.nn.Parameter(b.clone())]
    theirs = [torch.nn.Parameter(a.clone()), torch.nn.Parameter(b.clone())]
    opt_ours = ref.AdamW([{"params": [ours[0]], "weight_decay": 0.0}, {"params": [ours[1]], "lr": 0.05}])
    opt_theirs = torch.optim.AdamW([{"params": [theirs[0]], "weight_decay": 0.0}, {"params": [theirs[1]], "lr": 0.05}],
                                   foreach=False)
    for step, lr in enumerate([0.1, 0.02, 0.3, 0.001]):
        for opt in (opt_ours, opt_theirs):
            for group in opt.param_groups:
                group["lr"] = lr
        for i, (p, q) in enumerate(zip(ours, theirs)):
            g = randn(p.shape, 10 * step + i)
            p.grad, q.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-12)


def test_adamw_state_dict_round_trip():
    init = randn((5,), 3)
    p1, p2 = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    o1 = ref.AdamW([p1], lr=0.1)
    for step in range(3):
        p1.grad = randn((5,), step)
        o1.step()
    with torch.no_grad():
        p2.copy_(p1)
    o2 = ref.AdamW([p2], lr=0.1)
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))  # a copy, as from a file: no shared moment tensors
    for step in range(2):
        g = randn((5,), 10 + step)
        p1.grad, p2.grad = g.clone(), g.clone()
        o1.step()
        o2.step()
    assert torch.equal(p1.detach(), p2.detach())


# ------------------------------------------------------------------------------------------- schedule
def test_lr_at_step_by_hand():
    assert ref.lr_at_step(0, 1.0, 0.1, 10, 110) == 0.0  # warm-up starts from 0
    assert ref.lr_at_step(1, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert ref.lr_at_step(9, 1.0, 0.1, 10, 110) == pytest.approx(0.9)
    assert ref.lr_at_step(10, 1.0, 0.1, 10, 110) == 1.0  # the peak, where the cosine starts
    assert ref.lr_at_step(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)  # half way: the mean of max and min
    assert ref.lr_at_step(110, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert ref.lr_at_step(500, 1.0, 0.1, 10, 110) == 0.1
    assert ref.lr_at_step(0, 1.0, 0.1, 0, 10) == 1.0  # no warm-up
    assert ref.lr_at_step(3, 2.0, 0.5, 5, 5) == pytest.approx(1.2)
    assert ref.lr_at_step(5, 2.0, 0.5, 5, 5) == 0.5  # warm-up as long as the run: min_lr once it is over


@quick
@given(warmup=st.integers(0, 30), decay=st.integers(1, 80), max_lr=st.floats(1e-5, 1.0), frac=st.floats(0.0, 1.0))
def test_lr_cosine_part_equals_pytorch_scheduler(warmup, decay, max_lr, frac):
    min_lr = max_lr * frac
    total = warmup + decay
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=decay, eta_min=min_lr)
    for t in range(decay + 1):
        assert ref.lr_at_step(warmup + t, max_lr, min_lr, warmup, total) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
    for step in range(warmup):
        assert ref.lr_at_step(step, max_lr, min_lr, warmup, total) == pytest.approx(max_lr * step / warmup)
    for step in range(total + 20):
        assert ref.lr_at_step(step, max_lr, min_lr, warmup, total) == pytest.approx(
            parts.lr_at_step(step, max_lr, min_lr, warmup, total), rel=1e-12, abs=1e-300)


# ------------------------------------------------------------------------------------------- clipping
@quick
@given(shapes=st.lists(st.lists(st.integers(1, 5), min_size=1, max_size=2), min_size=1, max_size=4), seed=seeds,
       scale=st.sampled_from([1e-3, 1.0, 50.0]), max_norm=st.sampled_from([0.01, 0.5, 1.0, 10.0, 1e4]), data=st.data())
def test_clip_grad_norm_equals_pytorch(shapes, seed, scale, max_norm, data):
    present = data.draw(st.lists(st.booleans(), min_size=len(shapes), max_size=len(shapes)), label="present")
    grads = [randn(s, seed + i, scale) if keep else None for i, (s, keep) in enumerate(zip(shapes, present))]
    ours = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    kits = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for group in (ours, theirs, kits):
        for p, g in zip(group, grads):
            p.grad = None if g is None else g.clone()
    norm_ours = ref.clip_grad_norm_(iter(ours), max_norm)  # a one-shot iterator, like model.parameters()
    norm_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    norm_kits = parts.clip_grad_norm_(kits, max_norm)
    assert float(norm_ours) == pytest.approx(float(norm_theirs), rel=1e-12, abs=1e-300)
    assert float(norm_kits) == float(norm_theirs)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------------------------------ the training loop
CFG = {"vocab_size": 13, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": False}


def _ids(n, seed, vocab=13):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _model(seed, cls=ref_gpt.GPTModel):
    torch.manual_seed(seed)
    return cls(CFG)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_train_equals_a_loop_written_with_pytorch_builtins():
    """The reference loop against the same loop written with F.cross_entropy, clip_grad_norm_ and AdamW."""
    ids, val = _ids(200, 1), _ids(60, 2)
    kw = dict(num_steps=13, eval_every=4, eval_batches=2, grad_accum_steps=2, max_lr=0.01, min_lr=0.001,
              warmup_steps=3, max_grad_norm=0.3)
    model = _model(0)
    history = ref.train(model, ref.create_dataloader(ids, 3, 6, 4, True, True, 5),
                        ref.create_dataloader(val, 2, 6, 6, False, False, 0),
                        ref.AdamW(model.parameters(), lr=1.0, weight_decay=0.1), **kw)

    other = _model(0)
    opt = torch.optim.AdamW(other.parameters(), weight_decay=0.1, foreach=False)
    loader = parts.create_dataloader(ids, 3, 6, 4, True, True, 5)
    val_loader = parts.create_dataloader(val, 2, 6, 6, False, False, 0)
    stream = (b for _ in range(100) for b in loader)
    losses, val_losses, lrs = [], [], []
    for step in range(kw["num_steps"]):
        lr = parts.lr_at_step(step, 0.01, 0.001, 3, 13)
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        total = 0.0
        for _ in range(2):
            x, y = next(stream)
            loss = F.cross_entropy(other(x).flatten(0, 1), y.flatten())
            (loss / 2).backward()
            total += loss.item() / 2
        torch.nn.utils.clip_grad_norm_(other.parameters(), 0.3)
        opt.step()
        losses.append(total)
        lrs.append(lr)
        if (step + 1) % 4 == 0:
            other.eval()
            with torch.no_grad():
                batch_losses = [F.cross_entropy(other(x).flatten(0, 1), y.flatten()).item()
                                for x, y in list(val_loader)[:2]]
            val_losses.append(sum(batch_losses) / len(batch_losses))
            other.train()
    assert history["lr"] == lrs
    assert history["tokens_seen"] == [36 * (s + 1) for s in range(13)]
    assert history["train_loss"] == pytest.approx(losses, rel=1e-5)
    assert history["val_loss"] == pytest.approx(val_losses, rel=1e-5)
    for name, p in _params(model).items():
        torch.testing.assert_close(p, _params(other)[name], rtol=1e-4, atol=1e-5)
    assert model.training


def test_accumulating_micro_batches_equals_one_bigger_batch():
    ids, val = _ids(12 * 6 + 1, 3), _ids(30, 4)
    kw = dict(num_steps=9, eval_every=3, eval_batches=1, max_lr=0.5, min_lr=0.05, warmup_steps=2, max_grad_norm=None)
    small, big = _model(5), _model(5)
    h_small = ref.train(small, ref.create_dataloader(ids, 2, 6, 6, False, True, 0),
                        ref.create_dataloader(val, 2, 6, 6, False, False, 0),
                        torch.optim.SGD(small.parameters(), lr=1.0), grad_accum_steps=3, **kw)
    h_big = ref.train(big, ref.create_dataloader(ids, 6, 6, 6, False, True, 0),
                      ref.create_dataloader(val, 2, 6, 6, False, False, 0),
                      torch.optim.SGD(big.parameters(), lr=1.0), grad_accum_steps=1, **kw)
    assert h_small["tokens_seen"] == h_big["tokens_seen"]
    assert h_small["train_loss"] == pytest.approx(h_big["train_loss"], rel=1e-5)
    for name, p in _params(small).items():
        torch.testing.assert_close(p, _params(big)[name], rtol=1e-5, atol=1e-6)


def test_evaluate_uses_the_first_batches_in_eval_mode_and_train_switches_back():
    model = _model(0, parts_gpt.RecordingGPTModel)
    parts_gpt_model_state = _params(model)
    val = ref.create_dataloader(_ids(100, 5), 3, 6, 6, False, False, 0)
    ids = _ids(100, 6)
    model.eval()
    ref.train(model, ref.create_dataloader(ids, 2, 6, 3, True, True, 0), val,
              torch.optim.SGD(model.parameters(), lr=0.1),
              num_steps=5, eval_every=2, eval_batches=2, max_lr=0.1, min_lr=0.0, warmup_steps=0)
    log = parts_gpt.forward_log(model)
    assert log == [[2, True, True]] * 2 + [[3, False, False]] * 2 + [[2, True, True]] * 2 + [[3, False, False]] * 2 \
        + [[2, True, True]]
    assert model.training and parts_gpt.forward_log(model) == []
    assert any(not torch.equal(p, parts_gpt_model_state[n]) for n, p in _params(model).items())


def _step_loop(model, opt, ids, start, stop, total):
    """A plain loop for the resume test: batch s of the (unshuffled) windows at step s."""
    inputs, targets = parts._windows(ids, 6, 6)
    for step in range(start, stop):
        rows = slice((step % (len(inputs) // 2)) * 2, (step % (len(inputs) // 2) + 1) * 2)
        for group in opt.param_groups:
            group["lr"] = ref.lr_at_step(step, 0.02, 0.002, 2, total)
        opt.zero_grad()
        ref.cross_entropy(model(inputs[rows]), targets[rows]).backward()
        ref.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


@pytest.mark.parametrize("optimizer", ["reference", "torch"])
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, optimizer):
    make = (lambda m: ref.AdamW(m.parameters(), weight_decay=0.1)) if optimizer == "reference" else (
        lambda m: torch.optim.AdamW(m.parameters(), weight_decay=0.1, foreach=False))
    ids = _ids(300, 7)
    straight = _model(1)
    opt = make(straight)
    _step_loop(straight, opt, ids, 0, 12, 12)

    first = _model(1)
    opt_first = make(first)
    _step_loop(first, opt_first, ids, 0, 5, 12)
    ref.save_checkpoint(tmp_path / "ckpt.pt", first, opt_first, 5)
    _step_loop(first, opt_first, ids, 5, 7, 12)  # keeps going: the file must hold step 5, not this
    resumed = _model(2)  # other weights and a fresh optimizer: everything must come from the file
    opt_resumed = make(resumed)
    assert ref.load_checkpoint(tmp_path / "ckpt.pt", resumed, opt_resumed) == 5
    _step_loop(resumed, opt_resumed, ids, 5, 12, 12)
    for name, p in _params(straight).items():
        assert torch.equal(p, _params(resumed)[name]), name


def test_parts_run_steps_and_models_equal_the_reference(tmp_path):
    """The worker's trusted loop and models (used by the checkpoint tests) against the reference."""
    ids = _ids(200, 8)
    kit = _model(3, parts_gpt.RecordingGPTModel)
    theirs = _model(3)
    assert set(tools.model_state(kit)) == set(_params(theirs))
    for name, p in _params(theirs).items():
        assert torch.equal(tools.model_state(kit)[name], p)
    kit_opt = tools.TorchAdamW(kit, lr=0.1, weight_decay=0.1)
    ref_opt = ref.AdamW(theirs.parameters(), lr=0.1, weight_decay=0.1)
    inputs, targets = parts._windows(ids, 6, 6)
    lrs = [ref.lr_at_step(step, 0.02, 0.002, 2, 6) for step in range(6)]
    losses = tools.run_steps(kit, kit_opt, inputs, targets, 2, 0, lrs)
    want = []
    for step in range(6):
        rows = slice((step % (len(inputs) // 2)) * 2, (step % (len(inputs) // 2) + 1) * 2)
        for group in ref_opt.param_groups:
            group["lr"] = ref.lr_at_step(step, 0.02, 0.002, 2, 6)
        ref_opt.zero_grad()
        loss = ref.cross_entropy(theirs(inputs[rows]), targets[rows])
        loss.backward()
        ref_opt.step()
        want.append(loss.item())
    assert losses == pytest.approx(want, rel=1e-5)
    for name, p in _params(theirs).items():
        torch.testing.assert_close(tools.model_state(kit)[name], p, rtol=1e-4, atol=1e-5)
    assert tools.optimizer_lrs(kit_opt) == [pytest.approx(0.002 + 0.009 * (1 + math.cos(math.pi * 3 / 4)))]
    assert tools.set_lr(kit_opt, 0.5) is None and tools.optimizer_lrs(kit_opt) == [0.5]
    assert "cannot" in tools.set_lr(object(), 0.5) and "cannot" in tools.optimizer_lrs(object())
    val = ref.create_dataloader(_ids(80, 9), 3, 6, 6, False, False, 0)
    assert tools.evaluate(kit, val, 2) == pytest.approx(ref.evaluate(theirs, val, 2), rel=1e-4)
    assert not kit.training


def test_parts_param_box():
    box = tools.ParamBox([torch.ones(2), torch.zeros(3)], [True, False])
    assert [p.requires_grad for p in box] == [True, False] and len(box) == 2
    box.set_grads([torch.full((2,), 3.0), None])
    norm = parts.clip_grad_norm_(box, 1.0)
    assert float(norm) == pytest.approx(math.sqrt(18))
    assert box.grads()[1] is None and torch.allclose(box.grads()[0], torch.full((2,), 1 / math.sqrt(2)), atol=1e-6)
    opt = tools.TorchAdamW(box, lr=0.1)
    opt.step()
    assert box.devices() == ["cpu", "cpu"] and set(opt.state[box.params[0]]) == {"step", "exp_avg", "exp_avg_sq"}
    assert torch.equal(box.values()[1], torch.zeros(3))


def test_char_tokenizer_round_trip():
    tok = ref.CharTokenizer("hello world")
    assert tok.vocab_size == 8 and tok.decode(tok.encode("low row")) == "low row"
