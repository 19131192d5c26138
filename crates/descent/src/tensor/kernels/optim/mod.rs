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
pub mod muon;
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
///   g ← clamp(g·scale, ±clip) + l2·p;   p ← p − p·(η·wd)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Prep {
    pub scale: f32,
    pub clip: f32,
    pub l2: f32,
    /// η·wd of decoupled weight decay, formed in f64 from the configured values and
    /// rounded once. (Folded into a factor 1 − η·wd instead, f32's spacing near 1 would
    /// round away up to 1% of a 4e-6 decay every step.)
    pub decay: f32,
}

impl Prep {
    pub const IDENTITY: Prep = Prep { scale: 1.0, clip: f32::INFINITY, l2: 0.0, decay: 0.0 };

    /// The prepared gradient for parameter value `p`.
    #[inline(always)]
    pub fn grad(&self, g: f32, p: f32) -> f32 {
        (g * self.scale).clamp(-self.clip, self.clip) + self.l2 * p
    }
    /// The parameter after decoupled weight decay.
    #[inline(always)]
    pub fn decay(&self, p: f32) -> f32 {
        p - p * self.decay
    }
}

/// The configured value an f32 hyperparameter stands for, in f64: the shortest decimal
/// (≤ 9 significant digits) that rounds to it — 0.999 for `0.999f32`, which is
/// 0.99900001287 — found without allocating.
pub fn configured(x: f32) -> f64 {
    let d = x as f64;
    if !d.is_finite() || d == 0.0 {
        return d;
    }
    let magnitude = d.abs().log10().floor() as i32;
    for digits in 1..=9 {
        let scale = 10f64.powi(digits - 1 - magnitude);
        let r = (d * scale).round() / scale;
        if r as f32 == x {
            return r;
        }
    }
    d
}

/// 1 − x formed in f64 from the configured value and rounded once (Keras and PyTorch
/// compute it in Python floats). In f32, 1 − 0.999f32 is 1.3e-5 off 0.001: every Adam
/// step would be ~6e-6 too large, enough to drift from the references over many steps.
pub fn one_minus(x: f32) -> f32 {
    (1.0 - configured(x)) as f32
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_values_are_the_decimals_written() {
        for (x, want) in [(0.999f32, 0.999f64), (0.9, 0.9), (0.99999, 0.99999), (1e-7, 1e-7), (3e-4, 3e-4), (0.004, 0.004), (1.0, 1.0), (0.0, 0.0)] {
            assert_eq!(configured(x), want, "{x}");
        }
        // 1 − β rounded once: f32(0.001), where f32 arithmetic gives 0.00099998713.
        assert_eq!(one_minus(0.999), 0.001f32);
        assert_ne!(1.0f32 - 0.999f32, 0.001f32);
        // A value with no short decimal (a computed learning rate) is itself.
        let x = 0.000_734_123_45f32;
        assert_eq!(configured(x) as f32, x);
    }
}
