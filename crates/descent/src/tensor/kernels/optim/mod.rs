//! The optimizer rules' fused kernels, one file per rule (the rule itself — its
//! hyperparameters, state and checks — is in `optim/rules/`). Each kernel is plain data
//! (the rule's hyperparameters and the step's [`StepCtx`]) with a CPU body over the
//! tensor's parameters, gradient and state; it is launched through
//! [`Backend::optimizer_step`](crate::tensor::Backend::optimizer_step), so a device
//! backend can run its own kernel of the same name instead.

pub mod adadelta;
pub mod adafactor;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod ftrl;
pub mod lamb;
pub mod lars;
pub mod lion;
pub mod nadam;
pub mod radam;
pub mod rmsprop;
pub mod rprop;
pub mod schedule_free;
pub mod sgd;

/// What a rule sees of the current step.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct StepCtx {
    /// 1-based step number (Keras's `iterations + 1`).
    pub t: u64,
    /// Learning rate for this step (schedule applied).
    pub lr: f32,
    /// Gradient scaling, clipping, coupled L2 and decoupled decay for this tensor.
    pub prep: Prep,
}

/// The per-tensor gradient preparation and weight decay that every rule's kernel applies
/// to each element as it reads it, so clipping and decay cost no extra pass:
///
///   g ← clamp(g·scale, ±clip) + l2·p;   p ← p·(1 − η·wd)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Prep {
    pub scale: f32,
    pub clip: f32,
    pub l2: f32,
    pub keep: f32,
}

impl Prep {
    pub const IDENTITY: Prep = Prep { scale: 1.0, clip: f32::INFINITY, l2: 0.0, keep: 1.0 };

    /// The prepared gradient for parameter value `p`.
    #[inline(always)]
    pub fn grad(&self, g: f32, p: f32) -> f32 {
        (g * self.scale).clamp(-self.clip, self.clip) + self.l2 * p
    }
    /// The parameter after decoupled weight decay.
    #[inline(always)]
    pub fn decay(&self, p: f32) -> f32 {
        p * self.keep
    }
}

/// Splits a kernel's state slice into a fixed-size array (panics on a wrong count, which
/// is a bug in the rule, not user input).
pub(crate) fn states<'s, const N: usize>(state: &'s mut [&mut [f32]]) -> [&'s mut [f32]; N] {
    let mut it = state.iter_mut();
    std::array::from_fn(|_| &mut **it.next().expect("rule state count"))
}

/// Block size for per-tensor reductions: fixed, so sums never depend on thread count.
pub(crate) const BLOCK: usize = 1 << 15;
/// Up to this many blocks (8M elements) keep their partial sums on the stack.
pub(crate) const MAX_BLOCKS: usize = 256;

/// Adds per-block partial results in block order (f64), after they were computed in
/// parallel or sequentially: the order of additions depends on the length alone.
pub(crate) fn ordered_sum<const K: usize>(partials: &[[f32; K]]) -> [f64; K] {
    let mut out = [0.0f64; K];
    for p in partials {
        for k in 0..K {
            out[k] += p[k] as f64;
        }
    }
    out
}
