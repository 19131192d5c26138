//! CPU kernels. Each hot loop is written once as plain Rust and compiled three times
//! (baseline x86-64, AVX2+FMA, AVX-512) by [`simd_dispatch!`]; the best version the
//! processor supports is picked at run time, so a plain `cargo build --release` is fast
//! everywhere. Results do not depend on the chosen version: kernels never rely on the
//! compiler to reassociate or contract floating-point operations.

#[macro_use]
mod simd;
pub mod activation;
pub mod attention;
pub mod axis;
pub mod conv;
pub mod bandwidth;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod parallel;
pub mod reduce;
pub mod strided;

pub use simd::{simd_level, SimdLevel};
