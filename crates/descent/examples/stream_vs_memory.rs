//! Does training from a stream wait on I/O? The same model trained one epoch on the same
//! data, in memory (`fit`) and streamed from memory-mapped `.npy` windows through the
//! prefetch thread (`fit_stream`), alternating, 3 rounds. With the file in the page cache
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
    for _ in 0..3 {
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
    mem.sort_by(f64::total_cmp);
    streamed.sort_by(f64::total_cmp);
    println!("in memory:            {:>10.0} samples/s (median of 3; range {:.0}–{:.0})", mem[1], mem[0], mem[2]);
    println!("streamed (prefetch):  {:>10.0} samples/s (median of 3; range {:.0}–{:.0})", streamed[1], streamed[0], streamed[2]);
    println!("streamed / in memory: {:.2}", streamed[1] / mem[1]);
    std::fs::remove_dir_all(&dir).unwrap();
}
