//! The synthetic task of the benchmark workloads: labels from a fixed random "teacher"
//! network, y = argmax(relu(x·T1)·T2), x ~ N(0, 1).

use rand_distr::{Distribution, StandardNormal};

use super::Dataset;
use crate::error::Result;
use crate::rng;
use crate::tensor::kernels::matmul::matmul;
use crate::tensor::kernels::reduce::argmax;
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq)]
pub struct TeacherSpec {
    pub features: usize,
    pub hidden: usize,
    pub classes: usize,
}

impl TeacherSpec {
    /// W1's task: 100 features, teacher 100→32→10.
    pub const W1: TeacherSpec = TeacherSpec { features: 100, hidden: 32, classes: 10 };
    /// W2's task: 784 features, teacher 784→64→10.
    pub const W2: TeacherSpec = TeacherSpec { features: 784, hidden: 64, classes: 10 };
}

fn normal(n: usize, rng: &mut rng::Rng) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// `train` and `test` samples labelled by one teacher (fixed by `seed`).
pub fn teacher_classification(spec: &TeacherSpec, train: usize, test: usize, seed: u64) -> Result<(Dataset, Dataset)> {
    let mut trng = rng::derive(seed, 10);
    let t1 = normal(spec.features * spec.hidden, &mut trng);
    let t2 = normal(spec.hidden * spec.classes, &mut trng);
    let make = |n: usize, stream: u64, name: &str| -> Result<Dataset> {
        let mut r = rng::derive(seed, stream);
        let x = normal(n * spec.features, &mut r);
        let mut h = vec![0.0; n * spec.hidden];
        matmul(&mut h, &x, &t1, n, spec.features, spec.hidden, false, false, false);
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut z = vec![0.0; n * spec.classes];
        matmul(&mut z, &h, &t2, n, spec.hidden, spec.classes, false, false, false);
        let y: Vec<u32> = z.chunks_exact(spec.classes).map(|row| argmax(row) as u32).collect();
        Dataset::new(Tensor::new(x, &[n, spec.features])?, Tensor::from_classes(y, &[n, 1])?, name)
    };
    Ok((make(train, 11, "teacher (train)")?, make(test, 12, "teacher (test)")?))
}
