use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction-set level kernels run at, chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    Scalar = 1,
    Avx2 = 2,
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Asks for the cache line holding `data[at]` (ignored past the end of `data`).
#[inline(always)]
pub fn prefetch(data: &[f32], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < data.len() {
        // SAFETY: a prefetch never faults, and the address lies inside `data`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data.as_ptr().add(at) as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// Detected once; `DESCENT_SIMD=scalar|avx2|avx512` caps it (for tests and benchmarks).
pub fn simd_level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        1 => SimdLevel::Scalar,
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        _ => {
            let level = detect();
            LEVEL.store(level as u8, Ordering::Relaxed);
            level
        }
    }
}

fn detect() -> SimdLevel {
    let cap = match std::env::var("DESCENT_SIMD").as_deref() {
        Ok("scalar") => SimdLevel::Scalar,
        Ok("avx2") => SimdLevel::Avx2,
        Ok("avx512") | Err(_) => SimdLevel::Avx512,
        Ok(other) => {
            // A typo must not pass for a choice: say so, then use the best the CPU has.
            eprintln!("warning: DESCENT_SIMD={other:?} is not one of scalar, avx2, avx512; using the best level this CPU has");
            SimdLevel::Avx512
        }
    };
    #[cfg(target_arch = "x86_64")]
    {
        let hw = if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
            SimdLevel::Avx512
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            SimdLevel::Avx2
        } else {
            SimdLevel::Scalar
        };
        if (hw as u8) < (cap as u8) { hw } else { cap }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cap;
        SimdLevel::Scalar
    }
}

/// Defines a function whose body is compiled for baseline, AVX2 and AVX-512 and
/// dispatched at run time. The body must be a plain loop the compiler can vectorize.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn kernel($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { kernel($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { kernel($($arg),*) }
                match $crate::tensor::kernels::simd_level() {
                    // SAFETY: the level was checked against the running CPU's features.
                    $crate::tensor::kernels::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::tensor::kernels::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::tensor::kernels::SimdLevel::Scalar => {}
                }
            }
            kernel($($arg),*)
        }
    };
}

/// exp(x) to about 2 ulp, branch-free so that loops calling it vectorize.
/// Range reduction x = n·ln2 + r, |r| ≤ ln2/2, then Cephes' degree-6 polynomial for e^r
/// and 2^n built from the exponent bits.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let er = p * r * r + r + 1.0;
    let bits = ((n as i32 + 127) as u32) << 23;
    er * f32::from_bits(bits)
}

/// erf(x) to 5e-7 absolute (4 ulp at 1), branch-free so that loops calling it vectorize
/// (libm's `erff` is a scalar call: exact GELU spent 20 % of a GPT step in it).
/// Abramowitz & Stegun 7.1.26 on |x| (|ε| ≤ 1.5e-7), the sign restored after.
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let y = 1.0 - poly * fast_exp(-ax * ax);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            worst = worst.max((fast_erf(x) as f64 - libm::erf(x as f64)).abs());
            x += 0.000_37;
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
        assert_eq!(fast_erf(0.0), 0.0);
    }

    #[test]
    fn fast_exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let rel = ((fast_exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert!(fast_exp(-1000.0) < 1e-37);
        assert!(fast_exp(1000.0).is_finite());
    }
}
