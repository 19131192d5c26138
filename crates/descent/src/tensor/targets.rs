//! What a loss compares predictions against: values shaped like the predictions, or one
//! integer class per sample (sparse losses; never class indices as floats).

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Targets<'a> {
    Values(&'a [f32]),
    Classes(&'a [u32]),
}

impl Targets<'_> {
    pub fn len(&self) -> usize {
        match self {
            Targets::Values(v) => v.len(),
            Targets::Classes(c) => c.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` as a number (a class as its index).
    pub fn value(&self, i: usize) -> f32 {
        match self {
            Targets::Values(v) => v[i],
            Targets::Classes(c) => c[i] as f32,
        }
    }
}

/// The host buffers a loss node's targets are written into (reused from step to step):
/// the values, or the classes, as the loss kind takes them.
pub enum TargetsMut<'a> {
    Values(&'a mut Vec<f32>),
    Classes(&'a mut Vec<u32>),
}
