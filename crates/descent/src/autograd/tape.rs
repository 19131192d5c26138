use std::mem::take;
use std::ops::Range;

use super::params::{ParamId, ParamStore};
use crate::error::{Error, Result};
use crate::tensor::kernels::activation::{act_backward_inplace, bias_act_inplace, Activation};
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::kernels::matmul::matmul;
use crate::tensor::kernels::norm;
use crate::tensor::kernels::reduce::col_sums;
use crate::tensor::Shape;

/// A value on the tape (index of its node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(u32);

impl Var {
    fn idx(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Data fed in; never needs a gradient.
    Input,
    /// A view of a parameter in the `ParamStore` (values and gradients live there).
    Param { range: (usize, usize) },
    /// y = act(x·W + b)
    Dense { x: Var, w: Var, b: Option<Var>, act: Activation },
    /// y = act(x)
    Act { x: Var, act: Activation },
    /// y = a·b
    MatMul { a: Var, b: Var },
    /// y = a + b (same shapes)
    Add { a: Var, b: Var },
    /// y = [a | b]: rows of `a: [m, p]` and `b: [m, q]` side by side, `[m, p + q]`.
    Concat { a: Var, b: Var },
    /// y = x ⊙ m with a constant m (kept in `aux`): dropout's scaled mask.
    MulConst { x: Var },
    /// y = x + c with a constant c: additive noise.
    AddConst { x: Var },
    /// y = x, adding l1·Σ|x| + l2·Σx² to the loss (an activity regularizer).
    ActivityPenalty { x: Var, l1: f32, l2: f32 },
    /// y = γ ⊙ x̂ + β, x̂ normalized over each row (aux: x̂, then 1/σ per row).
    LayerNorm { x: Var, gamma: Var, beta: Var },
    /// y = γ ⊙ x̂ + β, x̂ normalized over each column with the batch's statistics or,
    /// when `fixed`, given ones (aux: x̂, then mean, variance and 1/σ per column).
    BatchNorm { x: Var, gamma: Var, beta: Var, fixed: bool },
    /// y = mean over the batch of loss(pred, target); a scalar.
    Loss { pred: Var },
}

struct Node {
    shape: Shape,
    op: Op,
    requires_grad: bool,
    value: Vec<f32>,
    grad: Vec<f32>,
    /// What backward needs beyond inputs and output: GELU's input, the loss gradient, targets.
    aux: Vec<f32>,
    /// Loss targets (held here so the op owns what it read).
    target: Vec<f32>,
    /// Per-sample loss weights (empty: unweighted).
    weights: Vec<f32>,
}

/// The record of one forward pass. See the module docs for the reuse contract.
pub struct Tape {
    nodes: Vec<Node>,
    len: usize,
    grad_enabled: bool,
    /// Penalties recorded by `activity_penalty` since the last reset (added to the loss).
    penalty: f64,
    /// Scratch for a model's forward pass: the value of each graph tensor, and one
    /// layer call's arguments. Kept here so a steady-state step allocates nothing.
    graph_vars: (Vec<Var>, Vec<Var>),
}

impl Default for Tape {
    fn default() -> Self {
        Tape { nodes: Vec::new(), len: 0, grad_enabled: true, penalty: 0.0, graph_vars: (Vec::new(), Vec::new()) }
    }
}

/// Where a value's storage is: a tape node's buffer or a range of the parameter store.
fn param_range(op: &Op) -> Option<Range<usize>> {
    match op {
        Op::Param { range } => Some(range.0..range.1),
        _ => None,
    }
}

fn value_of<'a>(nodes: &'a [Node], params: &'a [f32], v: Var) -> &'a [f32] {
    let n = &nodes[v.idx()];
    match param_range(&n.op) {
        Some(r) => &params[r],
        None => &n.value,
    }
}

/// Runs `f` with a mutable view of `v`'s gradient and shared access to all node values.
fn with_grad<R>(nodes: &mut [Node], pgrads: &mut [f32], v: Var, f: impl FnOnce(&[Node], &mut [f32]) -> R) -> R {
    match param_range(&nodes[v.idx()].op) {
        Some(r) => f(nodes, &mut pgrads[r]),
        None => {
            let mut g = take(&mut nodes[v.idx()].grad);
            let out = f(nodes, &mut g);
            nodes[v.idx()].grad = g;
            out
        }
    }
}

/// Runs a normalization backward with γ's values and mutable views of the gradients of
/// x, γ and β (each `None` when it needs none). Their buffers are moved out of the
/// nodes (or are disjoint ranges of the parameter gradients) for the duration.
fn norm_grads(
    nodes: &mut [Node],
    pgrads: &mut [f32],
    pvals: &[f32],
    (x, gamma, beta): (Var, Var, Var),
    f: impl FnOnce(&[f32], Option<&mut [f32]>, Option<&mut [f32]>, Option<&mut [f32]>),
) {
    // γ is normally a parameter, read from the store without a copy.
    let gamma_values: std::borrow::Cow<[f32]> = match param_range(&nodes[gamma.idx()].op) {
        Some(r) => std::borrow::Cow::Borrowed(&pvals[r]),
        None => std::borrow::Cow::Owned(nodes[gamma.idx()].value.clone()),
    };
    let mut own = |v: Var| -> Option<Vec<f32>> {
        (nodes[v.idx()].requires_grad && param_range(&nodes[v.idx()].op).is_none()).then(|| take(&mut nodes[v.idx()].grad))
    };
    let (mut gx, mut gg, mut gb) = (own(x), own(gamma), own(beta));
    let range = |v: Var| if nodes[v.idx()].requires_grad { param_range(&nodes[v.idx()].op) } else { None };
    let [px, pg, pb] = split_disjoint(pgrads, [range(x), range(gamma), range(beta)]);
    f(&gamma_values, gx.as_deref_mut().or(px), gg.as_deref_mut().or(pg), gb.as_deref_mut().or(pb));
    for (v, buf) in [(x, gx), (gamma, gg), (beta, gb)] {
        if let Some(b) = buf {
            nodes[v.idx()].grad = b;
        }
    }
}

/// Disjoint ranges of one buffer, mutably (any may be absent).
fn split_disjoint<const N: usize>(mut buf: &mut [f32], ranges: [Option<Range<usize>>; N]) -> [Option<&mut [f32]>; N] {
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| ranges[i].as_ref().map_or(usize::MAX, |r| r.start));
    let mut out: [Option<&mut [f32]>; N] = std::array::from_fn(|_| None);
    let mut offset = 0;
    for i in order {
        if let Some(r) = &ranges[i] {
            let (_, tail) = std::mem::take(&mut buf).split_at_mut(r.start - offset);
            let (mid, tail) = tail.split_at_mut(r.end - r.start);
            out[i] = Some(mid);
            buf = tail;
            offset = r.end;
        }
    }
    out
}

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the recorded ops, keeping all buffers for the next pass.
    pub fn reset(&mut self) {
        self.len = 0;
        self.penalty = 0.0;
    }

    /// The sum of the activity penalties of this pass (part of the loss to report; their
    /// gradients flow in backward).
    pub fn penalty(&self) -> f64 {
        self.penalty
    }

    /// `y = x`, with l1·Σ|x| + l2·Σx² added to the pass's penalty (Keras's
    /// `activity_regularizer`); backward adds l1·sign(x) + 2·l2·x to ∂L/∂x.
    pub fn activity_penalty(&mut self, store: &ParamStore, x: Var, l1: f32, l2: f32) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::ActivityPenalty { x, l1, l2 }, rg);
        let mut penalty = 0.0f64;
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            y.copy_from_slice(xv);
            let (abs, sq) = xv.iter().fold((0.0f64, 0.0f64), |(a, s), v| (a + v.abs() as f64, s + (*v as f64) * (*v as f64)));
            penalty = l1 as f64 * abs + l2 as f64 * sq;
        });
        self.penalty += penalty;
        out
    }

    /// Lends the graph-forward scratch buffers out (cleared); give them back with
    /// [`Tape::return_graph_vars`] so their capacity is kept.
    pub(crate) fn take_graph_vars(&mut self) -> (Vec<Var>, Vec<Var>) {
        let (mut a, mut b) = take(&mut self.graph_vars);
        a.clear();
        b.clear();
        (a, b)
    }
    pub(crate) fn return_graph_vars(&mut self, vars: (Vec<Var>, Vec<Var>)) {
        self.graph_vars = vars;
    }

    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Switches recording for backward on or off (what [`Tape::no_grad`] does around a
    /// closure, for callers that need the tape's owner inside it).
    pub fn set_grad_enabled(&mut self, on: bool) {
        self.grad_enabled = on;
    }

    /// Runs `f` without recording what backward would need (evaluation, prediction).
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Tape) -> R) -> R {
        let before = self.grad_enabled;
        self.grad_enabled = false;
        let out = f(self);
        self.grad_enabled = before;
        out
    }

    fn push(&mut self, shape: Shape, op: Op, requires_grad: bool) -> Var {
        let requires_grad = requires_grad && self.grad_enabled;
        let n = match op {
            Op::Param { .. } => 0,
            _ => shape.numel(),
        };
        if self.len == self.nodes.len() {
            self.nodes.push(Node {
                shape,
                op,
                requires_grad,
                value: Vec::new(),
                grad: Vec::new(),
                aux: Vec::new(),
                target: Vec::new(),
                weights: Vec::new(),
            });
        }
        let node = &mut self.nodes[self.len];
        node.shape = shape;
        node.op = op;
        node.requires_grad = requires_grad;
        // Resizing within capacity does not allocate: steady-state steps reuse buffers.
        node.value.resize(n, 0.0);
        self.len += 1;
        Var((self.len - 1) as u32)
    }

    /// Adds input data, filled in place by `fill` (e.g. gathering a shuffled batch).
    pub fn input_with(&mut self, shape: Shape, fill: impl FnOnce(&mut [f32])) -> Var {
        let v = self.push(shape, Op::Input, false);
        fill(&mut self.nodes[v.idx()].value);
        v
    }

    pub fn input(&mut self, shape: Shape, data: &[f32]) -> Result<Var> {
        if shape.numel() != data.len() {
            return Err(Error::shape("Tape::input", format!("{} values for {shape}", shape.numel()), data.len()));
        }
        Ok(self.input_with(shape, |buf| buf.copy_from_slice(data)))
    }

    /// A leaf viewing a parameter; gradients flow into the store's flat gradient buffer.
    pub fn param(&mut self, store: &ParamStore, id: ParamId) -> Var {
        let e = store.entry(id);
        let r = e.range();
        self.push(e.shape, Op::Param { range: (r.start, r.end) }, e.trainable)
    }

    pub fn shape(&self, v: Var) -> Shape {
        self.nodes[v.idx()].shape
    }

    /// The value of `v` (parameters are read from `store`).
    pub fn value<'a>(&'a self, store: &'a ParamStore, v: Var) -> &'a [f32] {
        value_of(&self.nodes[..self.len], store.values(), v)
    }

    /// The gradient of the last `backward` with respect to a non-parameter value.
    pub fn grad(&self, v: Var) -> &[f32] {
        &self.nodes[v.idx()].grad
    }

    fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.idx()].requires_grad
    }

    /// Computes `op` into the freshly pushed node `out`, with its value buffer moved out
    /// so inputs can be read while it is written.
    fn compute(&mut self, store: &ParamStore, out: Var, f: impl FnOnce(&[Node], &[f32], &mut [f32], &mut Vec<f32>)) {
        let mut value = take(&mut self.nodes[out.idx()].value);
        let mut aux = take(&mut self.nodes[out.idx()].aux);
        f(&self.nodes[..self.len], store.values(), &mut value, &mut aux);
        self.nodes[out.idx()].value = value;
        self.nodes[out.idx()].aux = aux;
    }

    /// `y = act(x·W + b)` with `x: [batch, in]`, `W: [in, out]`, `b: [out]`: one GEMM and
    /// one fused bias + activation pass.
    pub fn dense(&mut self, store: &ParamStore, x: Var, w: Var, b: Option<Var>, act: Activation) -> Result<Var> {
        let (xs, ws) = (self.shape(x), self.shape(w));
        if xs.rank() != 2 || ws.rank() != 2 || xs.cols() != ws.dims()[0] {
            return Err(Error::shape("dense", format!("x [batch, {}] for kernel {ws}", ws.dims()[0]), xs));
        }
        let (m, k, n) = (xs.rows(), ws.dims()[0], ws.dims()[1]);
        if let Some(b) = b {
            if self.shape(b).numel() != n {
                return Err(Error::shape("dense bias", n, self.shape(b)));
            }
        }
        let rg = self.requires_grad(x) || self.requires_grad(w) || b.is_some_and(|b| self.requires_grad(b));
        let out = self.push(Shape::matrix(m, n), Op::Dense { x, w, b, act }, rg);
        let keep_input = rg && self.grad_enabled && act.needs_input_for_backward();
        self.compute(store, out, |nodes, params, y, aux| {
            matmul(y, value_of(nodes, params, x), value_of(nodes, params, w), m, k, n, false, false, false);
            let bias = b.map_or(&[][..], |b| value_of(nodes, params, b));
            if keep_input {
                bias_act_inplace(y, bias, n, Activation::Linear);
                aux.clear();
                aux.extend_from_slice(y);
                bias_act_inplace(y, &[], n, act);
            } else {
                bias_act_inplace(y, bias, n, act);
            }
        });
        Ok(out)
    }

    /// `y = act(x)`, elementwise (softmax: over the last axis).
    pub fn activation(&mut self, store: &ParamStore, x: Var, act: Activation) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::Act { x, act }, rg);
        let keep_input = rg && self.grad_enabled && act.needs_input_for_backward();
        let cols = xs.cols().max(1);
        self.compute(store, out, |nodes, params, y, aux| {
            let xv = value_of(nodes, params, x);
            y.copy_from_slice(xv);
            if keep_input {
                aux.clear();
                aux.extend_from_slice(xv);
            }
            bias_act_inplace(y, &[], cols, act);
        });
        out
    }

    /// `y = a·b` for `a: [m, k]`, `b: [k, n]`.
    pub fn matmul(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.rank() != 2 || sb.rank() != 2 || sa.dims()[1] != sb.dims()[0] {
            return Err(Error::shape("matmul", format!("[m, k]·[k, n] (left is {sa})"), sb));
        }
        let (m, k, n) = (sa.dims()[0], sa.dims()[1], sb.dims()[1]);
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(Shape::matrix(m, n), Op::MatMul { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            matmul(y, value_of(nodes, params, a), value_of(nodes, params, b), m, k, n, false, false, false);
        });
        Ok(out)
    }

    /// `y = a + b`, same shapes.
    pub fn add(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            return Err(Error::shape("add", sa, sb));
        }
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(sa, Op::Add { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let (av, bv) = (value_of(nodes, params, a), value_of(nodes, params, b));
            y.iter_mut().zip(av.iter().zip(bv)).for_each(|(y, (a, b))| *y = a + b);
        });
        Ok(out)
    }

    /// `y = [a | b]` for `a: [m, p]`, `b: [m, q]`: each row of `a` followed by the same row
    /// of `b` (Keras's `Concatenate` along the last axis). Backward splits ∂L/∂y back.
    pub fn concat(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.rank() != 2 || sb.rank() != 2 || sa.rows() != sb.rows() {
            return Err(Error::shape("concatenate", format!("[{}, features] (as the first input {sa})", sa.rows()), sb));
        }
        let (m, p, q) = (sa.rows(), sa.cols(), sb.cols());
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(Shape::matrix(m, p + q), Op::Concat { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let (av, bv) = (value_of(nodes, params, a), value_of(nodes, params, b));
            for (r, row) in y.chunks_exact_mut(p + q).enumerate() {
                row[..p].copy_from_slice(&av[r * p..(r + 1) * p]);
                row[p..].copy_from_slice(&bv[r * q..(r + 1) * q]);
            }
        });
        Ok(out)
    }

    /// `y = x ⊙ m` for a constant `m` shaped like `x`, written by `fill` into the node's
    /// reused buffer (dropout: m ∈ {0, 1/(1−rate)}). ∂L/∂x = ∂L/∂y ⊙ m.
    pub fn mul_const(&mut self, store: &ParamStore, x: Var, fill: impl FnOnce(&mut [f32])) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::MulConst { x }, rg);
        self.compute(store, out, |nodes, params, y, aux| {
            aux.resize(y.len(), 0.0);
            fill(aux);
            let xv = value_of(nodes, params, x);
            y.iter_mut().zip(xv.iter().zip(aux.iter())).for_each(|(y, (x, m))| *y = x * m);
        });
        out
    }

    /// `y = x + c` for a constant `c` shaped like `x`, written by `fill` straight into the
    /// output buffer (Gaussian noise). ∂L/∂x = ∂L/∂y.
    pub fn add_const(&mut self, store: &ParamStore, x: Var, fill: impl FnOnce(&mut [f32])) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::AddConst { x }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            fill(y);
            let xv = value_of(nodes, params, x);
            y.iter_mut().zip(xv).for_each(|(y, x)| *y += x);
        });
        out
    }

    fn check_norm(&self, what: &str, x: Var, gamma: Var, beta: Var) -> Result<(usize, usize)> {
        let xs = self.shape(x);
        let n = self.shape(gamma).numel();
        if xs.rank() != 2 || xs.cols() != n || self.shape(beta).numel() != n {
            return Err(Error::shape(what, format!("x [batch, {n}] with γ and β of {n} values"), xs));
        }
        Ok((xs.rows(), n))
    }

    /// Layer normalization of each row of `x` `[batch, n]`: y = γ ⊙ (x − μ)/√(σ² + ε) + β.
    pub fn layer_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32) -> Result<Var> {
        let (m, n) = self.check_norm("layer normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(Shape::matrix(m, n), Op::LayerNorm { x, gamma, beta }, rg);
        self.compute(store, out, |nodes, params, y, aux| {
            aux.resize(m * n + m, 0.0);
            let (xhat, inv) = aux.split_at_mut(m * n);
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            norm::layer_norm_forward(xv, g, b, eps, y, xhat, inv);
        });
        Ok(out)
    }

    /// Batch normalization of each column of `x` `[batch, n]`: with the batch's mean and
    /// (biased) variance, or with `fixed = Some((mean, variance))` (inference).
    pub fn batch_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32, fixed: Option<(Var, Var)>) -> Result<Var> {
        let (m, n) = self.check_norm("batch normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(Shape::matrix(m, n), Op::BatchNorm { x, gamma, beta, fixed: fixed.is_some() }, rg);
        self.compute(store, out, |nodes, params, y, aux| {
            aux.resize(m * n + 3 * n, 0.0);
            let (xhat, stats) = aux.split_at_mut(m * n);
            let (mean, rest) = stats.split_at_mut(n);
            let (var, inv) = rest.split_at_mut(n);
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            match fixed {
                None => norm::batch_norm_forward(xv, g, b, eps, y, xhat, mean, var, inv),
                Some((mm, mv)) => {
                    mean.copy_from_slice(value_of(nodes, params, mm));
                    var.copy_from_slice(value_of(nodes, params, mv));
                    norm::batch_norm_inference(xv, g, b, mean, var, eps, y, xhat, inv);
                }
            }
        });
        Ok(out)
    }

    /// The batch mean and variance a `batch_norm` node computed (for moving averages).
    pub fn batch_stats(&self, v: Var) -> Option<(&[f32], &[f32])> {
        let node = &self.nodes[v.idx()];
        match node.op {
            Op::BatchNorm { .. } => {
                let n = node.shape.cols();
                let stats = &node.aux[node.shape.numel()..];
                Some((&stats[..n], &stats[n..2 * n]))
            }
            _ => None,
        }
    }

    /// Mean over the batch of `kind`'s per-sample loss. `target` holds one class index per
    /// row for sparse losses, else a tensor shaped like `pred`. When recording, the
    /// gradient with respect to `pred` is computed in the same pass and kept for backward.
    pub fn loss(&mut self, store: &ParamStore, pred: Var, target: &[f32], kind: LossKind) -> Result<Var> {
        self.loss_with(store, pred, kind, |t| t.extend_from_slice(target))
    }

    /// Like [`Tape::loss`], with the targets written by `fill` into the node's own
    /// (reused) buffer, e.g. gathered from a shuffled dataset without a copy in between.
    pub fn loss_with(
        &mut self,
        store: &ParamStore,
        pred: Var,
        kind: LossKind,
        fill: impl FnOnce(&mut Vec<f32>),
    ) -> Result<Var> {
        self.loss_weighted(store, pred, kind, fill, |w| w.clear())
    }

    /// Like [`Tape::loss_with`], with per-sample weights written by `fill_weights` (left
    /// empty: unweighted): the loss is Σ wᵢ·lossᵢ / batch (Keras's reduction with
    /// `sample_weight`), and each sample's gradient is scaled by its weight.
    pub fn loss_weighted(
        &mut self,
        store: &ParamStore,
        pred: Var,
        kind: LossKind,
        fill: impl FnOnce(&mut Vec<f32>),
        fill_weights: impl FnOnce(&mut Vec<f32>),
    ) -> Result<Var> {
        let ps = self.shape(pred);
        let rows = ps.rows();
        let cols = ps.cols().max(1);
        let want = if kind.sparse_targets() { rows } else { ps.numel() };
        let rg = self.requires_grad(pred);
        let out = self.push(Shape::scalar(), Op::Loss { pred }, rg);
        {
            let node = &mut self.nodes[out.idx()];
            node.target.clear();
            fill(&mut node.target);
            node.weights.clear();
            fill_weights(&mut node.weights);
            let (got, weights) = (node.target.len(), node.weights.len());
            if got != want || (weights != 0 && weights != rows) {
                self.len -= 1;
                if got != want {
                    return Err(Error::shape("loss targets", format!("{want} values for predictions {ps}"), got));
                }
                return Err(Error::shape("sample weights", format!("{rows} values (one per sample)"), weights));
            }
        }
        let record = rg && self.grad_enabled;
        let scale = 1.0 / rows.max(1) as f32;
        self.compute(store, out, |nodes, params, y, aux| {
            let p = value_of(nodes, params, pred);
            let node = &nodes[out.idx()];
            if record {
                aux.resize(p.len(), 0.0);
            }
            let sum = if node.weights.is_empty() {
                kind.compute(p, &node.target, cols, record.then_some(&mut aux[..]), scale)
            } else {
                // Row by row, each loss and gradient scaled by the sample's weight.
                let tcols = if kind.sparse_targets() { 1 } else { cols };
                let mut total = 0.0;
                for (r, w) in node.weights.iter().enumerate() {
                    let g = record.then(|| &mut aux[r * cols..(r + 1) * cols]);
                    let l = kind.compute(&p[r * cols..(r + 1) * cols], &node.target[r * tcols..(r + 1) * tcols], cols, g, scale * w);
                    total += *w as f64 * l;
                }
                total
            };
            y[0] = (sum * scale as f64) as f32;
        });
        Ok(out)
    }

    /// The targets a loss node was computed against.
    pub fn targets(&self, loss: Var) -> &[f32] {
        &self.nodes[loss.idx()].target
    }

    /// Scalar value of a loss node.
    pub fn scalar(&self, v: Var) -> f32 {
        self.nodes[v.idx()].value[0]
    }

    /// Back-propagates from the scalar `root`, accumulating parameter gradients into
    /// `store`'s gradient buffer (zero it first with `ParamStore::zero_grads`) and leaving
    /// the gradients of intermediate values readable through [`Tape::grad`].
    pub fn backward(&mut self, root: Var, store: &mut ParamStore) -> Result<()> {
        if !self.grad_enabled {
            return Err(Error::State("backward called inside no_grad".into()));
        }
        if self.shape(root).numel() != 1 {
            return Err(Error::shape("backward root", "a scalar", self.shape(root)));
        }
        for node in &mut self.nodes[..self.len] {
            if node.requires_grad && param_range(&node.op).is_none() {
                let n = node.shape.numel();
                node.grad.resize(n, 0.0);
                node.grad.fill(0.0);
            }
        }
        if !self.requires_grad(root) {
            return Ok(());
        }
        self.nodes[root.idx()].grad[0] = 1.0;
        let mut pgrads = store.take_grads();
        let pvals = store.values();
        let nodes = &mut self.nodes[..self.len];
        for i in (0..=root.idx()).rev() {
            if !nodes[i].requires_grad {
                continue;
            }
            let op = nodes[i].op;
            let shape = nodes[i].shape;
            match op {
                Op::Input | Op::Param { .. } => {}
                Op::Dense { x, w, b, act } => {
                    let (m, n) = (shape.rows(), shape.cols());
                    let k = nodes[x.idx()].shape.cols();
                    // ∂L/∂z = ∂L/∂y ⊙ act'(z), in place in this node's gradient buffer.
                    let mut g = take(&mut nodes[i].grad);
                    act_backward_inplace(&mut g, &nodes[i].value, &nodes[i].aux, n, act);
                    // ∂L/∂b = Σ_rows ∂L/∂z
                    if let Some(b) = b.filter(|b| nodes[b.idx()].requires_grad) {
                        with_grad(nodes, &mut pgrads, b, |_, gb| col_sums(gb, &g, n, true));
                    }
                    // ∂L/∂W = xᵀ·∂L/∂z
                    if nodes[w.idx()].requires_grad {
                        with_grad(nodes, &mut pgrads, w, |nodes, gw| {
                            matmul(gw, value_of(nodes, pvals, x), &g, k, m, n, true, false, true)
                        });
                    }
                    // ∂L/∂x = ∂L/∂z·Wᵀ
                    if nodes[x.idx()].requires_grad {
                        with_grad(nodes, &mut pgrads, x, |nodes, gx| {
                            matmul(gx, &g, value_of(nodes, pvals, w), m, n, k, false, true, true)
                        });
                    }
                    nodes[i].grad = g;
                }
                Op::Act { x, act } => {
                    let mut g = take(&mut nodes[i].grad);
                    act_backward_inplace(&mut g, &nodes[i].value, &nodes[i].aux, shape.cols().max(1), act);
                    with_grad(nodes, &mut pgrads, x, |_, gx| gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b));
                    nodes[i].grad = g;
                }
                Op::MatMul { a, b } => {
                    let g = take(&mut nodes[i].grad);
                    let (m, n) = (shape.rows(), shape.cols());
                    let k = nodes[a.idx()].shape.cols();
                    // ∂L/∂a = g·bᵀ, ∂L/∂b = aᵀ·g
                    if nodes[a.idx()].requires_grad {
                        with_grad(nodes, &mut pgrads, a, |nodes, ga| {
                            matmul(ga, &g, value_of(nodes, pvals, b), m, n, k, false, true, true)
                        });
                    }
                    if nodes[b.idx()].requires_grad {
                        with_grad(nodes, &mut pgrads, b, |nodes, gb| {
                            matmul(gb, value_of(nodes, pvals, a), &g, k, m, n, true, false, true)
                        });
                    }
                    nodes[i].grad = g;
                }
                Op::Add { a, b } => {
                    let g = take(&mut nodes[i].grad);
                    for v in [a, b] {
                        if nodes[v.idx()].requires_grad {
                            with_grad(nodes, &mut pgrads, v, |_, gv| gv.iter_mut().zip(&g).for_each(|(x, y)| *x += y));
                        }
                    }
                    nodes[i].grad = g;
                }
                Op::Concat { a, b } => {
                    // ∂L/∂a and ∂L/∂b are the left and right column blocks of ∂L/∂y.
                    let g = take(&mut nodes[i].grad);
                    let (p, q) = (nodes[a.idx()].shape.cols(), nodes[b.idx()].shape.cols());
                    for (v, offset, width) in [(a, 0, p), (b, p, q)] {
                        if nodes[v.idx()].requires_grad {
                            with_grad(nodes, &mut pgrads, v, |_, gv| {
                                for (dst, row) in gv.chunks_exact_mut(width).zip(g.chunks_exact(p + q)) {
                                    dst.iter_mut().zip(&row[offset..offset + width]).for_each(|(d, s)| *d += s);
                                }
                            });
                        }
                    }
                    nodes[i].grad = g;
                }
                Op::MulConst { x } => {
                    let g = take(&mut nodes[i].grad);
                    let m = take(&mut nodes[i].aux);
                    with_grad(nodes, &mut pgrads, x, |_, gx| gx.iter_mut().zip(g.iter().zip(&m)).for_each(|(gx, (g, m))| *gx += g * m));
                    nodes[i].grad = g;
                    nodes[i].aux = m;
                }
                Op::ActivityPenalty { x, l1, l2 } => {
                    let g = take(&mut nodes[i].grad);
                    let root_grad = 1.0f32;
                    with_grad(nodes, &mut pgrads, x, |nodes, gx| {
                        let xv = value_of(nodes, pvals, x);
                        for ((gx, g), v) in gx.iter_mut().zip(&g).zip(xv) {
                            let sign = if *v > 0.0 { 1.0 } else if *v < 0.0 { -1.0 } else { 0.0 };
                            *gx += g + root_grad * (l1 * sign + 2.0 * l2 * v);
                        }
                    });
                    nodes[i].grad = g;
                }
                Op::AddConst { x } => {
                    let g = take(&mut nodes[i].grad);
                    with_grad(nodes, &mut pgrads, x, |_, gx| gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b));
                    nodes[i].grad = g;
                }
                Op::LayerNorm { x, gamma, beta } => {
                    let g = take(&mut nodes[i].grad);
                    let aux = take(&mut nodes[i].aux);
                    let (xhat, inv) = aux.split_at(shape.numel());
                    norm_grads(nodes, &mut pgrads, pvals, (x, gamma, beta), |gv, gx, gg, gb| {
                        norm::layer_norm_backward(&g, xhat, inv, gv, gx, gg, gb)
                    });
                    nodes[i].grad = g;
                    nodes[i].aux = aux;
                }
                Op::BatchNorm { x, gamma, beta, fixed } => {
                    let g = take(&mut nodes[i].grad);
                    let aux = take(&mut nodes[i].aux);
                    let n = shape.cols();
                    let (xhat, stats) = aux.split_at(shape.numel());
                    let inv = &stats[2 * n..3 * n];
                    norm_grads(nodes, &mut pgrads, pvals, (x, gamma, beta), |gv, gx, gg, gb| {
                        norm::batch_norm_backward(&g, xhat, inv, gv, fixed, gx, gg, gb)
                    });
                    nodes[i].grad = g;
                    nodes[i].aux = aux;
                }
                Op::Loss { pred } => {
                    let upstream = nodes[i].grad[0];
                    let aux = take(&mut nodes[i].aux);
                    with_grad(nodes, &mut pgrads, pred, |_, gp| {
                        gp.iter_mut().zip(&aux).for_each(|(g, a)| *g += upstream * a)
                    });
                    nodes[i].aux = aux;
                }
            }
        }
        store.restore_grads(pgrads);
        Ok(())
    }
}
