//! The tape: slots (one node per recorded value, its buffers kept between passes),
//! shapes, and the reverse sweep. What each op computes forward and backward is in
//! `ops/`, one file per op.

use std::mem::take;

use super::ops::{self, param_range, value_of, Backward, Op, Saved};
use super::params::{ParamId, ParamStore};
use crate::error::{Error, Result};
use crate::tensor::{Backend, DeviceInts, DeviceSlice, DeviceVec, HostRef, Shape, B};

/// A value on the tape (index of its node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(u32);

impl Var {
    pub(crate) fn idx(self) -> usize {
        self.0 as usize
    }
}

/// One recorded value: what made it, its value and gradient, and what its op saved
/// for backward (each op's `…Saved` struct names the slots).
pub(crate) struct Node {
    pub(crate) shape: Shape,
    pub(crate) op: Op,
    pub(crate) requires_grad: bool,
    pub(crate) value: DeviceVec,
    pub(crate) grad: DeviceVec,
    pub(crate) saved: Saved,
    /// Integer operands of the op (token or class ids), kept as integers.
    pub(crate) ints: DeviceInts,
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
    /// Data-parallel: the other replicas, for ops whose statistics span every replica's
    /// rows (synchronized batch norm). None in one process.
    pub(crate) replicas: Option<super::replica::Replicas>,
}

impl Default for Tape {
    fn default() -> Self {
        Tape { nodes: Vec::new(), len: 0, grad_enabled: true, penalty: 0.0, graph_vars: (Vec::new(), Vec::new()), replicas: None }
    }
}

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the recorded ops, keeping all buffers for the next pass.
    pub fn reset(&mut self) {
        self.len = 0;
        self.penalty = 0.0;
        if let Some(r) = &mut self.replicas {
            r.reset();
        }
    }

    /// Joins the tape to the other replicas of a data-parallel fit (or, with None,
    /// leaves them): synchronized batch norms then take their statistics over every
    /// replica's rows.
    pub fn set_replicas(&mut self, group: Option<Box<dyn super::ReplicaSum>>) {
        self.replicas = group.map(super::replica::Replicas::new);
    }

    /// This replica's weight in the coming step's gradient (its share of the rows).
    pub fn set_replica_weight(&mut self, weight: f64) {
        if let Some(r) = &mut self.replicas {
            r.weight = weight;
        }
    }

    /// For a step in which this replica has no rows: takes part, adding zeros, in the
    /// sums the last pass made over the replicas. Returns how many.
    pub fn replay_replica_sums(&mut self) -> usize {
        self.replicas.as_mut().map_or(0, |r| r.replay_as_zeros())
    }

    /// The sum of the activity penalties of this pass (part of the loss to report; their
    /// gradients flow in backward).
    pub fn penalty(&self) -> f64 {
        self.penalty
    }

    /// Adds to this pass's penalty (activity regularizers).
    pub(crate) fn add_penalty(&mut self, p: f64) {
        self.penalty += p;
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
    /// The value of graph tensor `t` (inputs, then each node's output) in the last
    /// forward pass of a network on this tape.
    pub(crate) fn graph_var(&self, t: usize) -> Option<Var> {
        self.graph_vars.0.get(t).copied()
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

    pub(crate) fn push(&mut self, shape: Shape, op: Op, requires_grad: bool) -> Var {
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
                value: DeviceVec::default(),
                grad: DeviceVec::default(),
                saved: Saved::default(),
                ints: DeviceInts::default(),
            });
        }
        let node = &mut self.nodes[self.len];
        node.shape = shape;
        node.op = op;
        node.requires_grad = requires_grad;
        // Resizing within capacity does not allocate: steady-state steps reuse buffers.
        B::resize(&mut node.value, n);
        self.len += 1;
        Var((self.len - 1) as u32)
    }

    /// Forgets the last recorded node (an op that failed its checks after `push`).
    pub(crate) fn pop(&mut self) {
        self.len -= 1;
    }

    pub(crate) fn node(&self, v: Var) -> &Node {
        &self.nodes[v.idx()]
    }

    pub(crate) fn node_mut(&mut self, v: Var) -> &mut Node {
        &mut self.nodes[v.idx()]
    }

    /// Adds input data, filled in place by `fill` (e.g. gathering a shuffled batch).
    pub fn input_with(&mut self, shape: Shape, fill: impl FnOnce(&mut [f32])) -> Var {
        let v = self.push(shape, Op::Input, false);
        B::write_with(&mut self.nodes[v.idx()].value, fill);
        v
    }

    pub fn input(&mut self, shape: Shape, data: &[f32]) -> Result<Var> {
        if shape.numel() != data.len() {
            return Err(Error::shape("Tape::input", format!("{} values for {shape}", shape.numel()), data.len()));
        }
        Ok(self.input_with(shape, |buf| buf.copy_from_slice(data)))
    }

    /// Input data whose gradient backward computes (readable through [`Tape::grad`]):
    /// what saliency and integrated gradients differentiate.
    pub fn input_requiring_grad(&mut self, shape: Shape, data: &[f32]) -> Result<Var> {
        if shape.numel() != data.len() {
            return Err(Error::shape("Tape::input_requiring_grad", format!("{} values for {shape}", shape.numel()), data.len()));
        }
        let v = self.push(shape, Op::Input, true);
        B::write_with(&mut self.nodes[v.idx()].value, |buf| buf.copy_from_slice(data));
        Ok(v)
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

    /// The arithmetic of the recorded forward pass in FLOPs (a multiply-add is 2): its
    /// dense, convolution, matrix-product and attention ops, which hold nearly all of
    /// a model's work (elementwise ops are memory-bound and not counted). Causal
    /// attention is counted whole, as the bench's GPT count does. A training step is
    /// about three times this: backward computes two products per forward one.
    pub fn forward_flops(&self) -> f64 {
        let last = |s: Shape| s.dims().last().copied().unwrap_or(1).max(1) as f64;
        let macs = |n: &Node| -> f64 {
            let out = n.shape.numel() as f64;
            match n.op {
                // Each output of a dense or channels-last convolution reads one
                // kernel column: the kernel's size over its output width.
                Op::Dense { w, .. } | Op::Conv2d { w, .. } => out * self.shape(w).numel() as f64 / last(n.shape),
                Op::MatMul { a, .. } | Op::BatchedMatMul { a, .. } => out * last(self.shape(a)),
                // q·kᵀ then the weights times v: Tk multiply-adds per query and per
                // output element.
                Op::Attention { q, k, .. } => {
                    let tk = self.shape(k).dims().get(1).copied().unwrap_or(0) as f64;
                    (self.shape(q).numel() as f64 + out) * tk
                }
                _ => 0.0,
            }
        };
        self.nodes[..self.len].iter().map(|n| 2.0 * macs(n)).sum()
    }

    /// The value of `v` (parameters are read from `store`).
    pub fn value<'a>(&'a self, store: &'a ParamStore, v: Var) -> HostRef<'a> {
        B::host(self.device_value(store, v))
    }

    /// The value of `v` where it lives, for kernels.
    pub(crate) fn device_value<'a>(&'a self, store: &'a ParamStore, v: Var) -> &'a DeviceSlice {
        value_of(&self.nodes[..self.len], store.device_values(), v)
    }

    /// The gradient of the last `backward` with respect to a non-parameter value.
    pub fn grad(&self, v: Var) -> HostRef<'_> {
        B::host(&self.nodes[v.idx()].grad)
    }

    pub(crate) fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.idx()].requires_grad
    }

    /// Computes the op of the freshly pushed node `out`: `f` gets every node (to read
    /// inputs), the parameter values, and the node's value and saved buffers, moved out
    /// meanwhile.
    pub(crate) fn compute(&mut self, store: &ParamStore, out: Var, f: impl FnOnce(&[Node], &DeviceSlice, &mut DeviceSlice, &mut Saved)) {
        let mut value = take(&mut self.nodes[out.idx()].value);
        let mut saved = take(&mut self.nodes[out.idx()].saved);
        f(&self.nodes[..self.len], store.device_values(), &mut value, &mut saved);
        self.nodes[out.idx()].value = value;
        self.nodes[out.idx()].saved = saved;
    }

    /// Scalar value of a loss node.
    pub fn scalar(&self, v: Var) -> f32 {
        B::read(&self.nodes[v.idx()].value, 0)
    }

    /// Back-propagates from the scalar `root`, accumulating parameter gradients into
    /// `store`'s gradient buffer (zero it first with `ParamStore::zero_grads`) and leaving
    /// the gradients of intermediate values readable through [`Tape::grad`].
    pub fn backward(&mut self, root: Var, store: &mut ParamStore) -> Result<()> {
        self.backward_observed(root, store, |_, _| {})
    }

    /// The parameter leaves of the last pass that gradients flow into: (node index,
    /// range of the flat buffer). Backward is done with a range once it has processed
    /// every node above the lowest leaf reading it.
    pub fn param_leaves(&self) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> + '_ {
        self.nodes[..self.len].iter().enumerate().filter(|(_, n)| n.requires_grad).filter_map(|(i, n)| param_range(&n.op).map(|r| (i, r)))
    }

    /// The first recorded op that backward runs (a node needing a gradient that is not
    /// a leaf): once backward has processed it, nothing is left to do.
    pub fn first_grad_op(&self) -> usize {
        self.nodes[..self.len].iter().position(|n| n.requires_grad && !matches!(n.op, Op::Param { .. } | Op::Input)).unwrap_or(0)
    }

    /// [`Tape::backward`], calling `after(i, grads)` once node `i` (and every node above
    /// it) has been processed, with the flat parameter gradients so far: what starts
    /// summing finished gradient buckets over data-parallel ranks during backward.
    pub fn backward_observed(&mut self, root: Var, store: &mut ParamStore, mut after: impl FnMut(usize, &DeviceSlice)) -> Result<()> {
        if !self.grad_enabled {
            return Err(Error::State("backward called inside no_grad".into()));
        }
        if self.shape(root).numel() != 1 {
            return Err(Error::shape("backward root", "a scalar", self.shape(root)));
        }
        for node in &mut self.nodes[..self.len] {
            if node.requires_grad && param_range(&node.op).is_none() {
                let n = node.shape.numel();
                B::resize(&mut node.grad, n);
                B::fill(&mut node.grad, 0.0);
            }
        }
        if !self.requires_grad(root) {
            return Ok(());
        }
        B::fill(B::range_mut(&mut self.nodes[root.idx()].grad, 0..1), 1.0);
        let mut pgrads = store.take_grads();
        let mut ctx = Backward { nodes: &mut self.nodes[..self.len], pvals: store.device_values(), pgrads: &mut pgrads, replicas: self.replicas.as_mut() };
        for i in (0..=root.idx()).rev() {
            if ctx.nodes[i].requires_grad {
                ops::backward(&mut ctx, i);
            }
            after(i, ctx.pgrads);
        }
        store.restore_grads(pgrads);
        Ok(())
    }
}
