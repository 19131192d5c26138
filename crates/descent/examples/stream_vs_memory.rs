//! Does training from a stream wait on I/O? The same model trained one epoch on the same
//! data, in memory (`fit`) and streamed from memory-mapped `.npy` windows through the
//! prefetch thread (`fit_stream`), alternating, 9 rounds; the ratio is the median of the
//! rounds' own ratios, so a slow moment on a shared machine hits both sides of one pair. With the file in the page cache
//! the two should run at the same speed; the gap is what streaming costs.
//! Run: cargo run --release -p descent --example stream_vs_memory
use std::time::Instant;

use descent::data::{read_npy, write_npy_f32, NpyStream, Prefetch, Shard};
use descent::nn::{Activation, Dense, Loss};
use descent::train::{Model, Sequential};
use descent::optim::Adam;
use descent::rng::hash_uniform;
use descent::tensor::Tensor;
use descent::train::FitOptions;

const ROWS: usize = 200_000;
const FEATURES: usize = 128;
const ROUNDS: usize = 9;

fn model() -> Model {
    let mut m = Sequential::new(vec![
        Box::new(Dense::new(64, Activation::Relu).input_shape(&[FEATURES])),
        Box::new(Dense::new(2, Activation::Linear)),
    ])
    .unwrap();
    m.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &[]).unwrap();
    m
}

fn main() {
    let dir = std::env::temp_dir().join(format!("descent-stream-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    write_npy_f32(&xp, &[ROWS, FEATURES], hash_uniform).unwrap();
    write_npy_f32(&yp, &[ROWS], |r, _| (hash_uniform(r, 0) + hash_uniform(r, 1) > 0.0) as u8 as f32).unwrap();
    let x = read_npy(&xp).unwrap();
    let y = Tensor::new(read_npy(&yp).unwrap().into_data(), &[ROWS, 1]).unwrap();
    let options = || FitOptions { epochs: 1, batch_size: 256, verbose: 0, ..Default::default() };
    println!("{ROWS} samples × {FEATURES} features ({} MB), batch 256, one epoch each:", (ROWS * FEATURES * 4) >> 20);
    let (mut mem, mut streamed) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut m = model();
        let t = Instant::now();
        m.fit(&x, &y, options()).unwrap();
        mem.push(ROWS as f64 / t.elapsed().as_secs_f64());
        let mut m = model();
        let mut source = Prefetch::new(Box::new(NpyStream::open(&xp, &yp, 16, 1, Shard::default()).unwrap()), 4);
        let t = Instant::now();
        m.fit_stream(&mut source, options()).unwrap();
        streamed.push(ROWS as f64 / t.elapsed().as_secs_f64());
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let ratios: Vec<f64> = streamed.iter().zip(&mem).map(|(s, m)| s / m).collect();
    let ((m, m_lo, m_hi), (s, s_lo, s_hi), (r, r_lo, r_hi)) = (median(&mem), median(&streamed), median(&ratios));
    println!("in memory:            {m:>10.0} samples/s (median of {ROUNDS}; range {m_lo:.0}–{m_hi:.0})");
    println!("streamed (prefetch):  {s:>10.0} samples/s (median of {ROUNDS}; range {s_lo:.0}–{s_hi:.0})");
    println!("streamed / in memory: {r:.2} (median of the {ROUNDS} rounds' ratios; range {r_lo:.2}–{r_hi:.2})");
    std::fs::remove_dir_all(&dir).unwrap();
}
