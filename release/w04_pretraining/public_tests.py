"""Public tests for week 4 (pretraining): small, instant checks shipped with the notebook.

They use tiny examples whose answers were worked out by hand, and for the training loop a one-layer
"bigram" model (an embedding table that maps each token straight to next-token logits) with PyTorch's
SGD, so they do not depend on your week-3 model or on your AdamW. The hidden tests check the same
contract much more thoroughly.
"""

import math
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from autograder.student.public import public_test


def _tensor(value, what):
    assert isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, got {type(value).__name__}"
    return value


def _rows(t):
    return [[round(float(v), 4) for v in row] for row in t.reshape(-1, t.shape[-1])]


# ------------------------------------------------------------------------------------------------
# Exercise 1: GPTDataset and create_dataloader
# ------------------------------------------------------------------------------------------------


@public_test("gpt_dataset")
def windows_by_hand(ns):
    """10 tokens, context_length 4, stride 2: three windows, targets shifted by one"""
    ds = ns.GPTDataset(list(range(10, 20)), 4, 2)
    assert len(ds) == 3, (f"10 tokens with context_length=4 and stride=2 give (10 - 4 - 1) // 2 + 1 = 3 windows "
                          f"(starting at tokens 0, 2 and 4), got {len(ds)}")
    expected = [([10, 11, 12, 13], [11, 12, 13, 14]), ([12, 13, 14, 15], [13, 14, 15, 16]),
                ([14, 15, 16, 17], [15, 16, 17, 18])]
    for i, (want_x, want_y) in enumerate(expected):
        x, y = ds[i]
        _tensor(x, f"dataset[{i}][0]")
        assert x.dtype == torch.long and y.dtype == torch.long, f"use int64 (torch.long) tensors, got {x.dtype}"
        assert x.tolist() == want_x, f"dataset[{i}] inputs should be {want_x}, got {x.tolist()}"
        assert y.tolist() == want_y, (f"dataset[{i}] targets should be {want_y} (the inputs shifted by one token), "
                                      f"got {y.tolist()}")


@public_test("gpt_dataset")
def short_texts_and_long_strides(ns):
    """too few tokens give no window; a stride longer than the window skips tokens"""
    assert len(ns.GPTDataset([1, 2, 3, 4], 4, 1)) == 0, "4 tokens cannot make a window of 4 inputs + 1 target"
    one = ns.GPTDataset([1, 2, 3, 4, 5], 4, 1)
    assert len(one) == 1 and one[0][1].tolist() == [2, 3, 4, 5], "5 tokens make exactly one window of 4"
    skip = ns.GPTDataset(list(range(12)), 3, 5)
    assert len(skip) == 2, f"12 tokens, context_length 3, stride 5: windows start at 0 and 5, got {len(skip)} windows"
    assert skip[1][0].tolist() == [5, 6, 7], f"the second window should start at token 5, got {skip[1][0].tolist()}"


@public_test("gpt_dataset")
def loader_in_order(ns):
    """shuffle=False gives the windows in order, batch_size at a time; drop_last drops the partial batch"""
    loader = ns.create_dataloader(list(range(30)), batch_size=2, context_length=3, stride=3, shuffle=False,
                                  drop_last=False)
    batches = list(loader)
    assert len(batches) == 5, (f"9 windows in batches of 2 should give 5 batches (the last with 1 window), "
                               f"got {len(batches)}")
    x, y = batches[0]
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]] and y.tolist() == [[1, 2, 3], [4, 5, 6]], (
        f"the first batch should hold the first two windows, got inputs {x.tolist()} and targets {y.tolist()}")
    assert batches[-1][0].shape == (1, 3), f"the last batch should hold 1 window, got {tuple(batches[-1][0].shape)}"
    dropped = list(ns.create_dataloader(list(range(30)), batch_size=2, context_length=3, stride=3, shuffle=False,
                                        drop_last=True))
    assert len(dropped) == 4, f"with drop_last=True the partial batch is dropped: 4 batches, got {len(dropped)}"


@public_test("gpt_dataset")
def shuffle_depends_on_the_seed_only(ns):
    """shuffle=True: every window once per pass, and the same seed gives the same order"""
    def order(seed):
        loader = ns.create_dataloader(list(range(41)), batch_size=4, context_length=2, stride=2, shuffle=True,
                                      drop_last=False, seed=seed)
        return [int(row[0]) for x, _ in loader for row in x]

    first, again = order(7), order(7)
    assert sorted(first) == list(range(0, 40, 2)), "one shuffled pass should contain each of the 20 windows once"
    torch.rand(3)  # the global random state moves on: the order must not care
    assert first == order(7) == again, ("the same seed gave different orders: pass "
                                        "generator=torch.Generator().manual_seed(seed) to the DataLoader")
    assert first != sorted(first) or order(8) != sorted(first), "shuffle=True should change the order"


# ------------------------------------------------------------------------------------------------
# Exercise 2: cross_entropy and perplexity
# ------------------------------------------------------------------------------------------------


@public_test("cross_entropy")
def uniform_logits_give_log_v(ns):
    """equal logits give log(V) for any target, as a 0-dim tensor, for (N, V) and (B, T, V) inputs"""
    loss = _tensor(ns.cross_entropy(torch.zeros(3, 5), torch.tensor([0, 4, 2])), "cross_entropy")
    assert loss.dim() == 0, f"the loss should be a 0-dim tensor (a mean), got shape {tuple(loss.shape)}"
    assert abs(float(loss) - math.log(5)) < 1e-6, (f"equal logits over 5 tokens give log 5 = 1.6094, "
                                                   f"got {float(loss):.4f}")
    loss = ns.cross_entropy(torch.zeros(2, 3, 7), torch.zeros(2, 3, dtype=torch.long))
    assert abs(float(loss) - math.log(7)) < 1e-6, "(B, T, V) logits with (B, T) targets: flatten the leading dims"


@public_test("cross_entropy")
def small_example_by_hand(ns):
    """logits [0, ln 3] give probabilities [1/4, 3/4]: the loss is -log of the target's probability"""
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    loss = float(ns.cross_entropy(logits, torch.tensor([1, 0])))
    want = (-math.log(0.75) - math.log(0.25)) / 2  # mean of 0.2877 and 1.3863
    assert abs(loss - want) < 1e-6, f"expected the mean of -log(3/4) and -log(1/4) = {want:.4f}, got {loss:.4f}"


@public_test("cross_entropy")
def ignored_positions_do_not_count(ns):
    """positions whose target is ignore_index are left out of the mean"""
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0], [0.0, math.log(3.0)]])
    loss = float(ns.cross_entropy(logits, torch.tensor([1, -100, 0])))
    want = (-math.log(0.75) - math.log(0.25)) / 2
    assert abs(loss - want) < 1e-6, (f"with the middle target -100 the loss is the mean over the 2 other rows, "
                                     f"{want:.4f}; got {loss:.4f} (divide by the number of kept positions)")
    loss = float(ns.cross_entropy(logits, torch.tensor([1, 1, 0]), ignore_index=1))
    assert abs(loss + math.log(0.25)) < 1e-6, "ignore_index=1 should leave out the positions whose target is 1"


@public_test("cross_entropy")
def stable_for_large_logits(ns):
    """logits around +1000 or -1000 give the same finite loss as the unshifted ones"""
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    want = math.log(1 + math.e + math.e**2) - 2.0  # target 2: log-sum-exp minus its logit = 0.4076
    for shift in (1000.0, -1000.0):
        loss = float(ns.cross_entropy(logits + shift, torch.tensor([2])))
        assert math.isfinite(loss), f"logits around {shift:g} gave {loss}: subtract the row maximum before exp"
        assert abs(loss - want) < 1e-3, f"logits around {shift:g}: expected {want:.4f}, got {loss:.4f}"


@public_test("cross_entropy")
def gradient_flows(ns):
    """the loss is differentiable: its gradient is (softmax - one-hot) / N"""
    logits = torch.zeros(2, 4, requires_grad=True)
    ns.cross_entropy(logits, torch.tensor([1, 3])).backward()
    assert logits.grad is not None, "no gradient reached the logits: do not use .item() or float() inside"
    want = torch.tensor([[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])
    assert torch.allclose(logits.grad, want, atol=1e-6), f"gradient should be {_rows(want)}, got {_rows(logits.grad)}"


@public_test("cross_entropy")
def perplexity_is_exp_loss(ns):
    """perplexity(log 51) = 51, as a Python float, for a float and for a 0-dim tensor"""
    for arg in (math.log(51.0), torch.tensor(math.log(51.0))):
        value = ns.perplexity(arg)
        assert isinstance(value, float), f"perplexity should return a Python float, got {type(value).__name__}"
        assert abs(value - 51.0) < 1e-3, f"perplexity(log 51) should be 51, got {value}"


# ------------------------------------------------------------------------------------------------
# Exercise 3: AdamW
# ------------------------------------------------------------------------------------------------


def _weights(*values):
    return [nn.Parameter(torch.tensor(v)) for v in values]


@public_test("adamw")
def an_optimizer_with_the_default_hyperparameters(ns):
    """AdamW subclasses torch.optim.Optimizer and keeps lr, betas, eps, weight_decay in param_groups"""
    opt = ns.AdamW(_weights([1.0]))
    assert isinstance(opt, torch.optim.Optimizer), "AdamW should subclass torch.optim.Optimizer"
    group = opt.param_groups[0]
    for key, want in (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0.01)):
        have = group.get(key)
        have = tuple(have) if isinstance(have, (list, tuple)) else have
        assert have == want, (f"param_groups[0]['{key}'] should default to {want}, got {have!r}: pass the "
                              "hyperparameters to super().__init__ as the defaults dict")


@public_test("adamw")
def first_step_is_lr_times_sign(ns):
    """bias correction: the first step moves each weight by lr against the sign of its gradient"""
    (w,) = _weights([1.0, -2.0, 0.5])
    opt = ns.AdamW([w], lr=0.1, weight_decay=0.0)
    w.grad = torch.tensor([0.5, -3.0, 1e-3])
    opt.step()
    want = torch.tensor([0.9, -1.9, 0.4])
    moved = (w.detach() - torch.tensor([1.0, -2.0, 0.5])).abs()
    hint = " (moved by 0.316 = 0.1 / sqrt(0.001) * 0.1: is the bias correction missing?)" if moved.max() > 0.3 else ""
    assert torch.allclose(w.detach(), want, atol=1e-5), (f"after one step the weights should be {_rows(want)[0]} "
                                                         f"(m_hat = g, v_hat = g^2), got {_rows(w.detach())[0]}{hint}")


@public_test("adamw")
def weight_decay_is_decoupled(ns):
    """weight decay shrinks the weight by lr * weight_decay directly, it is not added to the gradient"""
    (w,) = _weights([2.0])
    opt = ns.AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = torch.tensor([10.0])
    opt.step()
    # 2 * (1 - 0.1 * 0.5) = 1.9, then the Adam step of size lr: 1.8. Adding 0.5 * 2 to the gradient gives 1.9.
    value = float(w.detach())
    assert abs(value - 1.8) < 1e-5, (f"expected 2 * (1 - lr * weight_decay) - lr = 1.8, got {value:.4f}"
                                    + (" (weight decay added to the gradient?)" if abs(value - 1.9) < 1e-4 else ""))


@public_test("adamw")
def missing_gradients_are_skipped(ns):
    """a weight whose .grad is None is left alone, and its own first step is bias-corrected later"""
    a, b = _weights([1.0], [1.0])
    opt = ns.AdamW([a, b], lr=0.1, weight_decay=0.1)
    a.grad = torch.tensor([1.0])
    opt.step()
    assert float(b.detach()) == 1.0, f"b had no gradient and should not change (no decay either), got {b.tolist()}"
    b.grad = torch.tensor([1.0])
    a.grad = torch.tensor([1.0])
    opt.step()
    want = 1.0 * (1 - 0.01) - 0.1
    got = float(b.detach())
    assert abs(got - want) < 1e-5, (f"b's first real step should be bias-corrected as step 1 (per-parameter step "
                                    f"count): expected {want:.4f}, got {got:.4f}")


@public_test("adamw")
def learning_rate_is_read_from_param_groups(ns):
    """changing param_groups[0]['lr'] between steps changes the step size (a schedule does this)"""
    (w,) = _weights([0.0])
    opt = ns.AdamW([w], lr=0.1, weight_decay=0.0)
    opt.param_groups[0]["lr"] = 0.5
    w.grad = torch.tensor([2.0])
    opt.step()
    got = float(w.detach())
    assert abs(got + 0.5) < 1e-5, (f"with param_groups[0]['lr'] = 0.5 the first step is -0.5, got {got:.4f}: read lr "
                                   "from the group inside step()")


# ------------------------------------------------------------------------------------------------
# Exercise 4: lr_at_step
# ------------------------------------------------------------------------------------------------


@public_test("lr_at_step")
def warmup_by_hand(ns):
    """warm-up from 0: steps 0, 5, 10 of a 10-step warm-up give 0, max_lr / 2, max_lr"""
    for step, want in ((0, 0.0), (5, 0.5), (10, 1.0)):
        got = ns.lr_at_step(step, 1.0, 0.1, 10, 110)
        assert abs(got - want) < 1e-9, (f"lr_at_step({step}, max_lr=1, min_lr=0.1, warmup=10, total=110) should be "
                                        f"{want}, got {got}")


@public_test("lr_at_step")
def cosine_by_hand(ns):
    """the cosine passes (max_lr + min_lr) / 2 half way and reaches min_lr at total_steps, then stays there"""
    for step, want in ((60, 0.55), (110, 0.1), (500, 0.1)):
        got = ns.lr_at_step(step, 1.0, 0.1, 10, 110)
        assert abs(got - want) < 1e-9, (f"lr_at_step({step}, max_lr=1, min_lr=0.1, warmup=10, total=110) should be "
                                        f"{want}, got {got}")
    got = ns.lr_at_step(0, 1.0, 0.1, 0, 100)
    assert abs(got - 1.0) < 1e-9, f"without warm-up the first step should use max_lr, got {got}"


# ------------------------------------------------------------------------------------------------
# Exercise 5: clip_grad_norm_
# ------------------------------------------------------------------------------------------------


@public_test("clip_grad_norm")
def global_norm_by_hand(ns):
    """gradients [3, 0] and [4] have global norm 5: clipped to 1 they become [0.6, 0] and [0.8]"""
    a, b = _weights([0.0, 0.0], [0.0])
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = ns.clip_grad_norm_(iter([a, b]), 1.0)
    assert abs(float(norm) - 5.0) < 1e-5, f"should return the norm before clipping, 5, got {float(norm)}"
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.0]), atol=1e-5) and torch.allclose(
        b.grad, torch.tensor([0.8]), atol=1e-5), (
        f"both gradients should be scaled by 1/5, got {a.grad.tolist()} and {b.grad.tolist()} "
        "(clipping each parameter on its own changes the direction)")


@public_test("clip_grad_norm")
def small_gradients_and_missing_ones(ns):
    """a norm below max_norm changes nothing; parameters without a gradient are skipped"""
    a, b, c = _weights([0.0, 0.0], [0.0], [0.0])
    a.grad, b.grad = torch.tensor([0.3, 0.0]), torch.tensor([0.4])
    norm = ns.clip_grad_norm_([a, b, c], 1.0)
    assert abs(float(norm) - 0.5) < 1e-6, f"the norm of [0.3, 0] and [0.4] is 0.5, got {float(norm)}"
    assert torch.allclose(a.grad, torch.tensor([0.3, 0.0])) and torch.allclose(b.grad, torch.tensor([0.4])), (
        f"a norm below max_norm should leave the gradients alone, got {a.grad.tolist()} and {b.grad.tolist()}")
    assert c.grad is None, "a parameter without a gradient should keep .grad = None"


# ------------------------------------------------------------------------------------------------
# Exercise 6: train
# ------------------------------------------------------------------------------------------------


class _Bigram(nn.Module):
    """Next-token logits straight from an embedding table; notes the mode of every forward pass."""

    def __init__(self, vocab):
        nn.Module.__init__(self)
        self.table = nn.Embedding(vocab, vocab)
        with torch.no_grad():
            self.table.weight.copy_(torch.linspace(-1, 1, vocab * vocab).reshape(vocab, vocab))
        self.modes = []

    def forward(self, token_batch):
        self.modes.append((token_batch.shape[0], self.training))
        return self.table(token_batch)


def _batches(sizes):
    """Fixed batches of windows over 0, 1, 2, ... (mod 6), of the given sizes, context length 3."""
    out, start = [], 0
    for size in sizes:
        rows = torch.arange(start, start + size * 3).reshape(size, 3)
        out.append((rows % 6, (rows + 1) % 6))
        start += size * 3
    return out


def _run(ns, model, loader, val, optimizer, **kw):
    settings = dict(num_steps=4, eval_every=2, eval_batches=1, max_lr=0.5, min_lr=0.05, warmup_steps=1)
    settings.update(kw)
    return ns.train(model, loader, val, optimizer, **settings)


@public_test("train")
def history_by_hand(ns):
    """4 steps, evaluation every 2: 4 losses, learning rates and token counts, 2 validation losses"""
    model = _Bigram(6)
    history = _run(ns, model, _batches([2, 2]), _batches([3]), torch.optim.SGD(model.parameters(), lr=1.0))
    assert isinstance(history, dict), f"train should return a dict, got {type(history).__name__}"
    for key, n in (("train_loss", 4), ("lr", 4), ("tokens_seen", 4), ("val_loss", 2)):
        assert key in history and len(history[key]) == n, f"history['{key}'] should have {n} entries"
    want_lr = [ns.lr_at_step(s, 0.5, 0.05, 1, 4) for s in range(4)]
    assert [float(v) for v in history["lr"]] == want_lr, f"history['lr'] should be {want_lr}, got {history['lr']}"
    assert list(history["tokens_seen"]) == [6, 12, 18, 24], (
        "each step trains on 2 windows of 3 tokens: tokens_seen should be [6, 12, 18, 24], "
        f"got {history['tokens_seen']}")
    assert history["train_loss"][-1] < history["train_loss"][0], "the training loss should go down"


@public_test("train")
def accumulation_equals_a_bigger_batch(ns):
    """2 micro-batches of 2 windows with grad_accum_steps=2 train exactly like batches of 4 windows"""
    small, big = _Bigram(6), _Bigram(6)
    _run(ns, small, _batches([2, 2, 2, 2]), _batches([3]), torch.optim.SGD(small.parameters(), lr=1.0),
         grad_accum_steps=2, max_grad_norm=None)
    four = [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in [_batches([2, 2, 2, 2])[i:i + 2]
                                                                             for i in (0, 2)]]
    _run(ns, big, four, _batches([3]), torch.optim.SGD(big.parameters(), lr=1.0), max_grad_norm=None)
    diff = (small.table.weight - big.table.weight).abs().max().item()
    assert diff < 1e-5, (f"the weights differ by {diff:.3g}: divide each micro-batch's loss by grad_accum_steps "
                         "before backward()")


@public_test("train")
def modes_and_evaluation(ns):
    """training forward passes in train mode (also after evaluating), evaluation in eval mode"""
    model = _Bigram(6).eval()
    _run(ns, model, _batches([2, 2]), _batches([3, 3, 3]), torch.optim.SGD(model.parameters(), lr=0.1),
         eval_batches=2)
    want = [(2, True), (2, True), (3, False), (3, False), (2, True), (2, True), (3, False), (3, False)]
    assert model.modes == want, (f"forward passes (batch size, training mode) should be {want}, got {model.modes}: "
                                 "model.train() at the start and after each evaluation, model.eval() to evaluate, "
                                 "and eval_batches batches per evaluation")


# ------------------------------------------------------------------------------------------------
# Exercise 7: checkpoints
# ------------------------------------------------------------------------------------------------


@public_test("checkpoint")
def round_trip(ns):
    """a checkpoint restores the weights, the optimizer's moments and the step into fresh objects"""
    model = _Bigram(5)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model.table.weight.grad = torch.ones(5, 5)
    opt.step()
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "check.pt")
        ns.save_checkpoint(path, model, opt, 7)
        other = _Bigram(5)
        with torch.no_grad():
            other.table.weight.zero_()
        other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
        step = ns.load_checkpoint(path, other, other_opt)
    assert step == 7 and isinstance(step, int), (f"load_checkpoint should return the saved step 7 as an int, "
                                                 f"got {step!r}")
    assert torch.equal(other.table.weight, model.table.weight), "the loaded model should have the saved weights"
    state = other_opt.state_dict()["state"]
    assert state and torch.equal(state[0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]), (
        "the optimizer's state (AdamW's moments) should be restored too: save optimizer.state_dict()")


@public_test("checkpoint")
def checkpoint_is_a_snapshot(ns):
    """what loads is the state at the time of saving, even after the model has changed since"""
    model = _Bigram(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = model.table.weight.detach().clone()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "snapshot.pt"
        ns.save_checkpoint(str(path), model, opt, 3)
        assert path.is_file() and path.stat().st_size > 0, "save_checkpoint should write the file at `path`"
        with torch.no_grad():
            model.table.weight.add_(1.0)  # training goes on after the checkpoint
        step = ns.load_checkpoint(str(path), model, opt)
    assert step == 3, f"load_checkpoint should return 3, got {step!r}"
    assert torch.equal(model.table.weight, saved), "loading should bring back the weights as they were when saved"
