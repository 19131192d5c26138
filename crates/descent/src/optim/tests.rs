//! Behaviour beyond the reference fixtures: exact resume, fused kernels equal to their
//! optax-style chains, non-finite steps skipped, the weight-decay exclusion rule.

use super::chain::{self, Chain};
use super::{Adam, Optimizer, OptimizerConfig, Sgd};
use crate::autograd::ParamStore;
use crate::io::{optimizer_state_from_bytes, optimizer_state_to_bytes};
use crate::tensor::Shape;

/// Two tensors (a kernel and a bias) large enough to take the parallel paths.
fn store() -> ParamStore {
    let mut s = ParamStore::new();
    s.add("dense.kernel", Shape::matrix(300, 400), |b| b.iter_mut().enumerate().for_each(|(i, v)| *v = ((i * 7919 % 1000) as f32 / 500.0) - 1.0));
    s.add("dense.bias", Shape::new(&[400]).unwrap(), |b| b.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 13) as f32 * 0.05));
    s
}

fn set_grads(s: &mut ParamStore, step: u64) {
    for (i, g) in s.grads_mut().iter_mut().enumerate() {
        *g = (((i as u64 * 2654435761 + step * 97) % 2001) as f32 / 1000.0 - 1.0) * if step.is_multiple_of(4) { 0.1 } else { 1.0 };
    }
}

fn run(opt: &mut dyn Optimizer, s: &mut ParamStore, from: u64, to: u64) {
    for step in from..to {
        set_grads(s, step);
        opt.step(s);
    }
}

#[test]
fn every_optimizer_resumes_bit_identically_from_saved_state() {
    for name in OptimizerConfig::NAMES {
        let mut cfg = OptimizerConfig::named(name).unwrap();
        // Exercise the stateful options too.
        cfg.options.use_ema = true;
        cfg.options.gradient_accumulation_steps = Some(2);
        let mut straight = cfg.build().unwrap();
        let mut s1 = store();
        run(straight.as_mut(), &mut s1, 0, 10);

        let mut first = cfg.build().unwrap();
        let mut s2 = store();
        run(first.as_mut(), &mut s2, 0, 5);
        let bytes = optimizer_state_to_bytes(&first.save_state()).unwrap();
        let state = optimizer_state_from_bytes(&bytes, std::path::Path::new("mem")).unwrap();
        let mut resumed = cfg.build().unwrap();
        resumed.load_state(&state, &s2).unwrap();
        run(resumed.as_mut(), &mut s2, 5, 10);
        assert!(s1.values() == s2.values(), "{name}: resumed run differs");
        assert!(straight.ema_weights() == resumed.ema_weights(), "{name}: EMA differs");
        assert_eq!(straight.iterations(), resumed.iterations());
    }
}

#[test]
fn state_for_another_optimizer_or_model_is_refused() {
    let mut s = store();
    let mut adam = Adam::new(1e-3);
    run(&mut adam, &mut s, 0, 2);
    let state = adam.save_state();
    let mut sgd = Sgd::new(0.1).momentum(0.9);
    let e = sgd.load_state(&state, &s).unwrap_err().to_string();
    assert!(e.contains("`adam`") && e.contains("`sgd`"), "{e}");
    let mut small = ParamStore::new();
    small.add("x", Shape::matrix(2, 2), |_| {});
    let e = Adam::new(1e-3).load_state(&state, &small).unwrap_err().to_string();
    assert!(e.contains("parameter slots"), "{e}");
}

#[test]
fn fused_optimizers_equal_their_chains() {
    // AdamW with global clipping: fused kernel vs clip → adam → decayed weights → −η.
    let (lr, wd) = (1e-2f32, 0.05f32);
    let mut fused = Adam::new(lr).weight_decay(wd).global_clipnorm(5.0);
    let mut chained = Chain::new(vec![
        chain::clip_by_global_norm(5.0),
        chain::scale_by_adam(0.9, 0.999, 1e-7),
        chain::add_decayed_weights(wd),
        chain::scale_by_learning_rate(lr.into()),
    ]);
    let (mut a, mut b) = (store(), store());
    run(&mut fused, &mut a, 0, 20);
    run(&mut chained, &mut b, 0, 20);
    let worst = a.values().iter().zip(b.values()).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "adamw fused vs chain: {worst}");

    // SGD with Nesterov momentum vs trace(nesterov) → −η.
    let mut fused = Sgd::new(0.05).momentum(0.9).nesterov(true);
    let mut chained = Chain::new(vec![chain::trace(0.9, true), chain::scale_by_learning_rate(0.05.into())]);
    let (mut a, mut b) = (store(), store());
    run(&mut fused, &mut a, 0, 20);
    run(&mut chained, &mut b, 0, 20);
    let worst = a.values().iter().zip(b.values()).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "nesterov fused vs chain: {worst}");

    // A chain checkpoints too.
    let state = chained.save_state();
    let mut again = Chain::new(vec![chain::trace(0.9, true), chain::scale_by_learning_rate(0.05.into())]);
    again.load_state(&state, &b).unwrap();
    let mut c = b.clone();
    run(&mut chained, &mut b, 20, 25);
    run(&mut again, &mut c, 20, 25);
    assert!(b.values() == c.values());
}

#[test]
fn non_finite_steps_are_skipped_when_asked() {
    let mut s = store();
    let mut opt = Adam::new(1e-2).skip_nonfinite(true);
    run(&mut opt, &mut s, 0, 3);
    let before = s.values().to_vec();
    set_grads(&mut s, 3);
    s.grads_mut()[17] = f32::NAN;
    opt.step(&mut s);
    assert_eq!(s.values(), &before[..], "a NaN gradient must leave the weights untouched");
    assert_eq!(opt.skipped_steps(), 1);
    run(&mut opt, &mut s, 4, 6);
    assert!(s.values().iter().all(|v| v.is_finite()));
    // Without the option the NaN propagates, which is what skip_nonfinite prevents.
    let mut plain = Adam::new(1e-2);
    set_grads(&mut s, 0);
    s.grads_mut()[17] = f32::NAN;
    plain.step(&mut s);
    assert!(s.values()[17].is_nan());
}

#[test]
fn weight_decay_skips_vectors_and_excluded_names_by_rule() {
    let zero_grad_step = |opt: &mut dyn Optimizer| {
        let mut s = store();
        s.grads_mut().fill(0.0);
        let before = s.values().to_vec();
        opt.step(&mut s);
        let kernel = s.entry(s.find("dense.kernel").unwrap()).range();
        let bias = s.entry(s.find("dense.bias").unwrap()).range();
        let changed = |r: std::ops::Range<usize>| r.clone().any(|i| s.values()[i] != before[i]);
        (changed(kernel), changed(bias))
    };
    // Default: kernels decay, 1-D tensors (biases, norm parameters) do not.
    assert_eq!(zero_grad_step(&mut Sgd::new(0.1).weight_decay(0.1)), (true, false));
    assert_eq!(zero_grad_step(&mut Sgd::new(0.1).weight_decay(0.1).decay_vectors(true)), (true, true));
    assert_eq!(zero_grad_step(&mut Sgd::new(0.1).weight_decay(0.1).exclude_from_weight_decay(&["kernel"])), (false, false));
    assert_eq!(zero_grad_step(&mut Sgd::new(0.1).l2(0.1).decay_vectors(true)), (true, true));
    // Decoupled decay is exactly p − p·(η·wd) when the gradient is zero, η·wd formed in
    // f64 from the configured 0.1 and 0.5 and rounded once.
    let mut s = store();
    s.grads_mut().fill(0.0);
    let p0 = s.values()[5];
    Sgd::new(0.1).weight_decay(0.5).step(&mut s);
    assert_eq!(s.values()[5], p0 - p0 * (0.1f64 * 0.5) as f32);
}

#[test]
fn set_learning_rate_rescales_a_schedule() {
    let sched = super::Schedule::ExponentialDecay { initial_learning_rate: 0.1, decay_steps: 1, decay_rate: 0.5, staircase: false };
    let mut opt = Sgd::new(0.1).with_learning_rate(sched);
    let mut s = store();
    run(&mut opt, &mut s, 0, 2);
    assert!((opt.learning_rate() - 0.025).abs() < 1e-9);
    opt.set_learning_rate(0.0025);
    assert!((opt.learning_rate() - 0.0025).abs() < 1e-9);
    run(&mut opt, &mut s, 2, 3);
    assert!((opt.learning_rate() - 0.00125).abs() < 1e-9, "the schedule keeps its shape, scaled by 1/10");
}
