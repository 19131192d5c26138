//! A steady-state training step allocates nothing on the heap: a counting global
//! allocator wraps the system one, and we count allocations during a few steps after
//! the buffers have grown. Only the test's own thread is counted: rayon's worker
//! thread starts up (and allocates) whenever the machine gets round to it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use descent::nn::{Activation, Add, Call, Concatenate, Dense, Input, Loss, SharedLayer};
use descent::train::{Model, Sequential};
use descent::optim::{Adam, RmsProp, Sgd};
use descent::tensor::Tensor;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether allocations on this thread are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn batch(rows: usize, cols: usize, seed: u32) -> Tensor {
    let data = (0..rows * cols).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0) - 0.5).collect();
    Tensor::new(data, &[rows, cols]).unwrap()
}

/// Single-threaded so rayon's pool (which allocates job queues when woken) stays out of
/// the count; the parallel paths reuse the same buffers. Every test calls this first (the
/// tests of this file share one global pool).
fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| rayon::ThreadPoolBuilder::new().num_threads(1).build_global().expect("the first use of rayon's pool"));
}

/// Heap allocations on this thread while `steps` runs, and its result.
fn allocations_during<R>(steps: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.set(true);
    let out = steps();
    COUNTED.set(false);
    (ALLOCATIONS.load(Ordering::SeqCst) - before, out)
}

#[test]
fn steady_state_training_steps_do_not_allocate() {
    single_threaded();
    let optimizers: Vec<Box<dyn descent::optim::Optimizer>> = vec![
        Box::new(Adam::new(1e-3)),
        Box::new(Adam::new(1e-3).amsgrad(true)),
        Box::new(Sgd::new(0.01).momentum(0.9).nesterov(true)),
        Box::new(RmsProp::new(1e-3).centered(true).momentum(0.5)),
    ];
    for (i, opt) in optimizers.into_iter().enumerate() {
        let name = opt.name();
        // Each optimizer once on the Sequential model, and Adam also on a functional one.
        let mut model = if i == 0 { functional() } else { sequential() };
        model.compile(opt, Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
        let xs: Vec<Tensor> = (0..4).map(|s| batch(32, 100, s)).collect();
        let y = Tensor::new((0..32).map(|i| (i % 10) as f32).collect(), &[32, 1]).unwrap();
        // Warm-up: buffers grow to their steady size.
        model.train_on_batch(&xs[0], &y).unwrap();
        model.train_on_batch(&xs[1], &y).unwrap();
        let (allocated, loss) = allocations_during(|| xs.iter().map(|x| model.train_on_batch(x, &y).unwrap()).sum::<f32>());
        assert!(loss.is_finite());
        assert_eq!(allocated, 0, "{name} ({:?}): {allocated} heap allocations in 4 steady-state steps", model.kind());
    }
}

#[test]
fn steady_state_steps_of_a_two_output_model_do_not_allocate() {
    single_threaded();
    // Two heads on one trunk, their losses weighted (the weighted-sum nodes included).
    let x = Input::new(&[100]);
    let h = Dense::new(64, Activation::Relu).call(&x).unwrap();
    let classes = Dense::new(10, Activation::Linear).call(&h).unwrap();
    let value = Dense::new(1, Activation::Linear).call(&h).unwrap();
    let mut model = Model::new(&[x], &[classes, value]).unwrap();
    let losses = [Loss::sparse_categorical_crossentropy(true), Loss::MeanSquaredError];
    model.compile_outputs(Box::new(Adam::new(1e-3)) as Box<dyn descent::optim::Optimizer>, &losses, &[1.0, 0.5], &["accuracy"]).unwrap();
    let xs: Vec<Tensor> = (0..4).map(|s| batch(32, 100, s)).collect();
    let y = Tensor::new((0..32).map(|i| (i % 10) as f32).collect(), &[32, 1]).unwrap();
    let v = Tensor::new((0..32).map(|i| i as f32 / 32.0).collect(), &[32, 1]).unwrap();
    model.train_on_batch_outputs(&[&xs[0]], &[&y, &v]).unwrap();
    model.train_on_batch_outputs(&[&xs[1]], &[&y, &v]).unwrap();
    let (allocated, loss) = allocations_during(|| xs.iter().map(|x| model.train_on_batch_outputs(&[x], &[&y, &v]).unwrap()).sum::<f32>());
    assert!(loss.is_finite());
    assert_eq!(allocated, 0, "two outputs: {allocated} heap allocations in 4 steady-state steps");
}

fn sequential() -> Model {
    Sequential::new(vec![
        Box::new(Dense::new(64, Activation::Relu).input_shape(&[100])),
        Box::new(Dense::new(32, Activation::Gelu { approximate: false })),
        Box::new(Dense::new(10, Activation::Linear)),
    ])
    .unwrap()
}

/// Every graph feature at once: a skip connection (Add), two branches joined
/// (Concatenate) and a layer shared by two calls.
fn functional() -> Model {
    let x = Input::new(&[100]);
    let h = Dense::new(64, Activation::Relu).call(&x).unwrap();
    let shared = SharedLayer::new(Dense::new(64, Activation::Tanh));
    let a = shared.call(&h).unwrap();
    let b = shared.call(&a).unwrap();
    let skip = Add::new().call_on(&[&h, &b]).unwrap();
    let side = Dense::new(16, Activation::Relu).call(&x).unwrap();
    let joined = Concatenate::new().call_on(&[&skip, &side]).unwrap();
    let y = Dense::new(10, Activation::Linear).call(&joined).unwrap();
    Model::new(&[x], &[y]).unwrap()
}

#[test]
fn steady_state_steps_of_a_convnet_do_not_allocate() {
    single_threaded();
    use descent::nn::{BatchNormalization, Conv, ConvConfig, DepthwiseConv2dConfig, Dropout, Flatten, FlipMode, Padding, Pooling, RandomFlip, SpatialDropout, DropoutConfig, ZeroPadding2d, Padding2d};
    // Every conv-family layer on the tape: augmentation, padding, convolution (strided,
    // grouped, depthwise), batch norm over channels, both poolings, spatial dropout.
    let x = Input::new(&[12, 12, 1]);
    let a = RandomFlip::new(FlipMode::Horizontal).call(&x).unwrap();
    let p = ZeroPadding2d::new(Padding2d::All(1)).call(&a).unwrap();
    let c = Conv::conv2d(ConvConfig { activation: Activation::Relu, ..ConvConfig::new(8, 3) }).call(&p).unwrap();
    let c = BatchNormalization::new().call(&c).unwrap();
    let g = Conv::conv2d(ConvConfig { groups: 2, padding: Padding::Same, ..ConvConfig::new(8, 3) }).call(&c).unwrap();
    let d = Conv::depthwise(DepthwiseConv2dConfig { strides: 2.into(), ..toml_depthwise() }).call(&g).unwrap();
    let s = SpatialDropout::new(2, DropoutConfig { rate: 0.2, seed: Some(1), name: None, input_shape: None, inputs: None }).call(&d).unwrap();
    let m = Pooling::max2d(2).call(&s).unwrap();
    let f = Flatten::new().call(&m).unwrap();
    let f = Dropout::new(0.5).call(&f).unwrap();
    let y = Dense::new(10, Activation::Linear).call(&f).unwrap();
    let mut model = Model::new(&[x], &[y]).unwrap();
    model.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    let xs: Vec<Tensor> = (0..4).map(|s| Tensor::new(batch(16, 144, s).data().to_vec(), &[16, 12, 12]).unwrap()).collect();
    let y = Tensor::new((0..16).map(|i| (i % 10) as f32).collect(), &[16, 1]).unwrap();
    model.train_on_batch(&xs[0], &y).unwrap();
    model.train_on_batch(&xs[1], &y).unwrap();
    let (allocated, loss) = allocations_during(|| xs.iter().map(|x| model.train_on_batch(x, &y).unwrap()).sum::<f32>());
    assert!(loss.is_finite());
    assert_eq!(allocated, 0, "convnet: {allocated} heap allocations in 4 steady-state steps");
}

fn toml_depthwise() -> descent::nn::DepthwiseConv2dConfig {
    toml::from_str("kernel_size = 3\npadding = \"same\"\ndepth_multiplier = 2").unwrap()
}

#[test]
fn steady_state_steps_of_a_transformer_do_not_allocate() {
    single_threaded();
    use descent::nn::{Dropout, LayerNormalization, MultiHeadAttention, TokenAndPositionEmbedding};
    // A GPT block: token + position embedding, pre-norm causal attention with dropout on
    // its weights, residual adds, a GELU MLP, the vocabulary head over every position.
    let (vocab, t) = (20, 16);
    let x = Input::new(&[t]);
    let e = TokenAndPositionEmbedding::new(vocab, t, 32).call(&x).unwrap();
    let n = LayerNormalization::new().call(&e).unwrap();
    let a = MultiHeadAttention::new(4, 8).causal().dropout(0.1).call(&n).unwrap();
    let r = Add::new().call_on(&[&e, &a]).unwrap();
    let n2 = LayerNormalization::new().call(&r).unwrap();
    let h = Dense::new(64, Activation::Gelu { approximate: false }).call(&n2).unwrap();
    let h = Dropout::new(0.1).call(&h).unwrap();
    let m = Dense::new(32, Activation::Linear).call(&h).unwrap();
    let r2 = Add::new().call_on(&[&r, &m]).unwrap();
    let y = Dense::new(vocab, Activation::Linear).call(&r2).unwrap();
    let mut model = Model::new(&[x], &[y]).unwrap();
    model.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    let ids = |s: usize| Tensor::new((0..8 * t).map(|i| ((i * 7 + s * 3) % vocab) as f32).collect(), &[8, t]).unwrap();
    let xs: Vec<Tensor> = (0..4).map(ids).collect();
    let y = ids(9);
    model.train_on_batch(&xs[0], &y).unwrap();
    model.train_on_batch(&xs[1], &y).unwrap();
    let (allocated, loss) = allocations_during(|| xs.iter().map(|x| model.train_on_batch(x, &y).unwrap()).sum::<f32>());
    assert!(loss.is_finite());
    assert_eq!(allocated, 0, "transformer: {allocated} heap allocations in 4 steady-state steps");
}

/// Counts this thread's allocations from the end of batch `from` to the end of batch
/// `to` of the first epoch: the whole fit loop in steady state, callbacks included.
struct CountBetween {
    from: usize,
    to: usize,
    start: usize,
    counted: Option<usize>,
}

impl descent::train::Callback for CountBetween {
    fn on_batch_end(&mut self, batch: usize, _logs: &descent::train::Logs, _ctx: &mut descent::train::TrainContext) {
        if self.counted.is_some() {
            return;
        }
        if batch == self.from {
            self.start = ALLOCATIONS.load(Ordering::SeqCst);
            COUNTED.set(true);
        } else if batch == self.to {
            COUNTED.set(false);
            self.counted = Some(ALLOCATIONS.load(Ordering::SeqCst) - self.start);
        }
    }
}

#[test]
fn fit_with_telemetry_does_not_allocate_in_steady_state() {
    single_threaded();
    let mut model = sequential();
    model.compile(Adam::new(1e-3).global_clipnorm(1.0), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    let x = batch(64 * 32, 100, 7);
    let y = Tensor::new((0..64 * 32).map(|i| (i % 10) as f32).collect(), &[64 * 32, 1]).unwrap();
    // 30 steps in steady state: three telemetry samples (every 10 steps) among them.
    let mut counter = CountBetween { from: 4, to: 34, start: 0, counted: None };
    let mut telemetry = descent::train::Telemetry::new(10);
    let options = descent::train::FitOptions { epochs: 1, batch_size: 32, verbose: 0, callbacks: vec![Box::new(&mut counter)], telemetry: Some(&mut telemetry), ..Default::default() };
    model.fit(&x, &y, options).unwrap();
    assert_eq!(counter.counted, Some(0), "heap allocations in 30 steady-state steps of fit with telemetry");
    assert_eq!(telemetry.steps.loss.len(), 64);
    assert!(telemetry.sample_steps.len() >= 6);
}
