//! descent's GEMM vs the `gemm` crate on the shapes of the workloads (same process,
//! interleaved, medians). Run: cargo run --release -p descent --features compare-gemm --example gemm_compare
use std::time::Instant;

use descent::tensor::kernels::matmul::matmul;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut ts = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        f();
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ts[reps / 2]
}

fn crate_gemm(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ta: bool, tb: bool) {
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= 1 << 21 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    unsafe {
        gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), a_cs, a_rs, b.as_ptr(), b_cs, b_rs, 1.0, 1.0, false, false, false, par);
    }
}

fn main() {
    let shapes = [
        ("W1 fwd 32x100x64", 32, 100, 64, false, false),
        ("W1 dW 100x32x64 (AtB)", 100, 32, 64, true, false),
        ("W1 dx 32x10x64 (ABt)", 32, 10, 64, false, true),
        ("W2 fwd 256x784x1024", 256, 784, 1024, false, false),
        ("W2 fwd 256x1024x1024", 256, 1024, 1024, false, false),
        ("W2 dW 1024x256x1024 (AtB)", 1024, 256, 1024, true, false),
        ("W2 dx 256x1024x1024 (ABt)", 256, 1024, 1024, false, true),
        ("sgemm 2048^3", 2048, 2048, 2048, false, false),
    ];
    println!("{:<28} {:>12} {:>12} {:>7}", "shape", "descent GF/s", "gemm GF/s", "ratio");
    for (name, m, k, n, ta, tb) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((2e9 / flops) as usize).clamp(5, 20000);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(flops / time(reps, || matmul(&mut c, &a, &b, m, k, n, ta, tb, false)) / 1e9);
            theirs.push(flops / time(reps, || crate_gemm(&mut c, &a, &b, m, k, n, ta, tb)) / 1e9);
        }
        ours.sort_by(|a, b| a.partial_cmp(b).unwrap());
        theirs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name:<28} {:>12.1} {:>12.1} {:>7.2}", ours[1], theirs[1], ours[1] / theirs[1]);
    }
}
