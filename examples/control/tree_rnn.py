"""A recursive TreeRNN over binary parse trees stored as child-index tensors: trained in
Python, exported with the recursion intact (a graph function that calls itself), and run
by amber's native C runtime -- forward and gradient -- with the same results as eager.

    python examples/control/tree_rnn.py [--steps N] [--dim D] [--out DIR] [--seed S]

A forest is four int64 tensors over its nodes -- ``left``, ``right`` (child indices, -1
at a leaf) and ``word`` (the word at a leaf) -- and the indices of the trees' ``roots``.
``encode`` is an ``@am.function``: at a leaf (``am.cond`` on ``left[node] < 0``) it
embeds the word, at an internal node it encodes both children by calling itself and
composes them, ``tanh(W [h_left; h_right] + b)``. ``am.scan`` over the roots gives one
logit per tree. The toy task: words carry a hidden polarity (+1, -1 or 0) and a tree's
label says whether its words sum to a positive number.

The script trains with ``am.optim.Adam`` (the loss must fall) and exports ``forward``
(weights in the file) and ``train_step`` (parameters in, ``(loss, parameters after one
SGD step)`` out) with symbolic node and tree counts, proven on real trees
(``am.export(..., examples=[...], random_vectors=False)``), which the file keeps as its
test vectors. It checks that the recursion is a ``call`` (traced once, not unrolled), that
eager, reference interpreter and native runtime agree on a forest of other sizes, and
that three ``train_step`` calls chained in C follow eager training. It prints a summary
and exits with status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import amber as am
import amber.nn as nn
import amber.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from example_support import (
    MismatchError,
    assert_close,
    flat,
    open_native,
    reference_run,
)

POLARITY = np.array([1, 1, 1, -1, -1, -1, 0, 0])
"""The hidden polarity of each word of the vocabulary."""

VOCAB = len(POLARITY)

SGD_LR = 0.1
"""Learning rate of the exported ``train_step``."""

Params = dict[str, am.Tensor]


@am.function
def encode(node: am.Tensor, left: am.Tensor, right: am.Tensor, word: am.Tensor,
           p: Params) -> am.Tensor:
    """The vector (D,) of the subtree rooted at ``node`` (an int64 scalar tensor)."""

    def leaf() -> am.Tensor:
        return p["embed.weight"][word[node]].tanh()

    def internal() -> am.Tensor:
        h_left = encode(left[node], left, right, word, p)
        h_right = encode(right[node], left, right, word, p)
        return (am.cat([h_left, h_right]) @ p["compose.weight"].T + p["compose.bias"]).tanh()

    return am.cond(left[node] < 0, leaf, internal)


def tree_logits(p: Params, roots: am.Tensor, left: am.Tensor, right: am.Tensor,
                word: am.Tensor) -> am.Tensor:
    """One logit per root, shape (R,)."""

    def per_tree(carry: am.Tensor, root: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
        h = encode(root, left, right, word, p)
        return carry, (h * p["out.weight"][0]).sum() + p["out.bias"][0]

    _, logits = am.scan(per_tree, am.zeros(1), roots)
    return logits


def loss_fn(p: Params, roots: am.Tensor, left: am.Tensor, right: am.Tensor, word: am.Tensor,
            labels: am.Tensor) -> am.Tensor:
    """Binary cross-entropy of the trees' logits against ``labels`` (0 or 1)."""
    return F.binary_cross_entropy_with_logits(tree_logits(p, roots, left, right, word), labels)


def train_step(p: Params, roots: am.Tensor, left: am.Tensor, right: am.Tensor,
               word: am.Tensor, labels: am.Tensor) -> tuple[am.Tensor, Params]:
    """The loss and the parameters after one SGD step (learning rate ``SGD_LR``)."""
    loss, grads = am.value_and_grad(loss_fn)(p, roots, left, right, word, labels)
    return loss, {k: p[k] - SGD_LR * grads[k] for k in p}


class TreeRNN(nn.Module):
    """Word embeddings, a composition layer (2D -> D) and a logistic output layer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.compose = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, 1)

    def params(self) -> Params:
        """The parameters by name (``embed.weight``, ``compose.weight``, ...)."""
        return dict(self.named_parameters())

    def forward(self, roots: am.Tensor, left: am.Tensor, right: am.Tensor, word: am.Tensor
                ) -> am.Tensor:
        return tree_logits(self.params(), roots, left, right, word)


@dataclass
class Forest:
    """Trees stored as child-index arrays over one node table."""

    roots: np.ndarray   # (R,) int64
    left: np.ndarray    # (N,) int64, -1 at leaves
    right: np.ndarray   # (N,) int64, -1 at leaves
    word: np.ndarray    # (N,) int64, the word at a leaf (0 at internal nodes)
    labels: np.ndarray  # (R,) float32: 1.0 if the tree's polarity sum is positive

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(roots, left, right, word)``: the model's inputs."""
        return self.roots, self.left, self.right, self.word

    def tensors(self) -> tuple[am.Tensor, ...]:
        """``(roots, left, right, word, labels)`` as amber tensors."""
        return tuple(am.tensor(a) for a in (*self.arrays(), self.labels))


def make_forest(rng: np.random.Generator, trees: int, max_leaves: int = 7) -> Forest:
    """``trees`` random binary trees of 1..max_leaves leaves (no tree sums to zero)."""
    left: list[int] = []
    right: list[int] = []
    word: list[int] = []

    def build(words: list[int]) -> int:
        if len(words) == 1:
            left.append(-1)
            right.append(-1)
            word.append(words[0])
            return len(word) - 1
        cut = int(rng.integers(1, len(words)))
        a, b = build(words[:cut]), build(words[cut:])
        left.append(a)
        right.append(b)
        word.append(0)
        return len(word) - 1

    roots: list[int] = []
    labels: list[float] = []
    while len(roots) < trees:
        words = [int(w) for w in rng.integers(0, VOCAB, size=int(rng.integers(1, max_leaves + 1)))]
        total = int(POLARITY[words].sum())
        if total == 0:
            continue
        roots.append(build(words))
        labels.append(1.0 if total > 0 else 0.0)
    i64 = np.int64
    return Forest(np.array(roots, i64), np.array(left, i64), np.array(right, i64),
                  np.array(word, i64), np.array(labels, np.float32))


def train(model: TreeRNN, steps: int, seed: int, trees: int = 16) -> list[float]:
    """Adam on fresh random forests; returns the loss of every step."""
    rng = np.random.default_rng(seed)
    opt = am.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(steps):
        forest = make_forest(rng, trees)
        opt.zero_grad()
        loss = loss_fn(model.params(), *forest.tensors())
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def export(model: TreeRNN, path: Path, forests: Sequence[Forest]) -> am.Program:
    """Export ``forward`` (weights in the file) and ``train_step`` (parameters as inputs)
    with symbolic node count ``n`` and tree count ``r``, proven on real ``forests`` (the
    export's ``examples``, which become the file's test vectors; random child indices
    would not form trees), and save to ``path``."""
    specs = (am.spec("r", dtype=am.int64), am.spec("n", dtype=am.int64),
             am.spec("n", dtype=am.int64), am.spec("n", dtype=am.int64))
    program = am.export(model, *specs, examples=[f.arrays() for f in forests],
                        random_vectors=False)
    params = {k: v.detach() for k, v in model.params().items()}
    pspecs = {k: am.spec(*v.shape) for k, v in params.items()}
    program.add(train_step, pspecs, *specs, am.spec("r"), name="train_step",
                examples=[(params, *f.arrays(), f.labels) for f in forests],
                random_vectors=False)
    program.save(path)
    return program


def recursion_is_a_call(program: am.Program) -> bool:
    """Whether ``encode`` became recursive functions: each entry traced it once as a
    function that its own branch calls twice (not an unrolling), and its VJP calls
    itself too."""
    calls = [node.attrs["callee"] for f in program.functions.values() for node in f.nodes
             if node.op == "call"]
    fns = [n for n in program.functions if n.startswith("encode") and not n.endswith("_vjp")]
    vjps = [n for n in program.functions if n.startswith("encode") and n.endswith("_vjp")]
    return (len(fns) == len(program.entries) and all(calls.count(f) >= 3 for f in fns)
            and len(vjps) == 1 and calls.count(vjps[0]) >= 3)


def check(model: TreeRNN, path: Path, seed: int, sgd_steps: int = 3) -> dict[str, float]:
    """Compare eager, reference and native on a forest the export never saw; returns
    the largest errors and the losses of the native SGD steps.

    Raises:
        MismatchError: two runners disagree.
    """
    forest = make_forest(np.random.default_rng(seed + 1), 9)
    ref = am.load(path, backend="reference")
    nat = open_native(path)  # runs the stored vectors, real trees included
    eager = flat(model(*[am.tensor(a) for a in forest.arrays()]))
    err_ref = assert_close("forward: reference vs eager",
                           reference_run(ref, "forward", *forest.arrays()), eager, 1e-5, 1e-6)
    err_nat = assert_close("forward: native vs eager", nat.run("forward", *forest.arrays()),
                           eager, 1e-5, 1e-6)
    p_eager = {k: v.detach() for k, v in model.params().items()}
    p_ref = p_native = flat(p_eager)
    losses, err_step = [], 0.0
    for s in range(sgd_steps):
        loss, p_eager = train_step(p_eager, *forest.tensors())
        want = flat((loss, p_eager))
        got_ref = reference_run(ref, "train_step", *p_ref, *forest.arrays(), forest.labels)
        got_nat = nat.run("train_step", *p_native, *forest.arrays(), forest.labels)
        err_step = max(err_step,
                       assert_close(f"train_step {s}: reference vs eager", got_ref, want,
                                    1e-4, 1e-5),
                       assert_close(f"train_step {s}: native vs eager", got_nat, want,
                                    1e-4, 1e-5))
        p_ref, p_native = got_ref[1:], got_nat[1:]
        losses.append(float(got_nat[0]))
    if not losses[-1] < losses[0]:
        raise MismatchError(f"native SGD steps did not lower the loss: {losses}")
    return {"forward_ref": err_ref, "forward_native": err_nat, "train_step": err_step,
            "sgd_first": losses[0], "sgd_last": losses[-1], "nodes": float(len(forest.left))}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="Adam training steps")
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="directory for tree_rnn.amber")
    args = ap.parse_args(argv)
    am.manual_seed(args.seed)
    model = TreeRNN(args.dim)
    t0 = time.perf_counter()
    losses = train(model, args.steps, args.seed)
    k = max(1, min(10, args.steps // 5))
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    print(f"tree_rnn: {args.steps} Adam steps in {time.perf_counter() - t0:.1f} s, "
          f"loss {first:.4f} -> {last:.4f} (mean of the first/last {k})")
    try:
        if not last < first:
            raise MismatchError(f"training did not lower the loss ({first} -> {last})")
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "tree_rnn.amber"
            rng = np.random.default_rng(args.seed + 2)
            program = export(model, path, [make_forest(rng, 4), make_forest(rng, 2)])
            if not recursion_is_a_call(program):
                raise MismatchError("encode was not captured as one recursive function")
            print(f"exported {path.name}: entries {', '.join(program.entries)}, "
                  f"{len(program.functions)} functions; encode and its VJP recurse by call")
            res = check(model, path, args.seed)
    except am.AmberError as e:  # a mismatch (ExampleError) or a failed export or run
        print(f"tree_rnn: FAILED: {e}")
        return 1
    print(f"forward (9 trees, {int(res['nodes'])} nodes): eager == reference (max err "
          f"{res['forward_ref']:.2e}) == native (max err {res['forward_native']:.2e})")
    print(f"train_step x3 chained in C == eager (max err {res['train_step']:.2e}), "
          f"loss {res['sgd_first']:.4f} -> {res['sgd_last']:.4f}")
    print("tree_rnn: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
