//! All trainable parameters of a model in one flat buffer, their gradients in a second
//! buffer of the same layout. Layers hold `ParamId`s (views: offset + shape). An optimizer
//! step is then one fused pass over memory, zeroing gradients one memset, and a checkpoint
//! or an all-reduce one buffer.

use crate::tensor::{Backend, DeviceSlice, DeviceVec, HostMut, HostRef, Shape, B};

/// Tensors start at multiples of 16 floats (64 bytes, one cache line / AVX-512 register).
const ALIGN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub(crate) usize);

#[derive(Clone, Debug)]
pub struct ParamEntry {
    /// Full name, e.g. `dense_1.kernel`.
    pub name: String,
    pub shape: Shape,
    pub offset: usize,
    pub trainable: bool,
}

impl ParamEntry {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.shape.numel()
    }
}

#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    values: DeviceVec,
    grads: DeviceVec,
    entries: Vec<ParamEntry>,
    /// Set for a store that only measures: `add` lays tensors out but stores nothing.
    sizing: Option<usize>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that only measures how long the flat buffers of the tensors added to it
    /// would be ([`ParamStore::len`]): nothing is allocated and no initializer runs.
    pub fn sizing() -> Self {
        Self { sizing: Some(0), ..Self::default() }
    }

    /// An empty store whose buffers already hold `len` floats of huge-page-backed memory
    /// (see `tensor::alloc`), touched once here: adding tensors up to that length then
    /// neither reallocates nor faults pages in. Size it with [`ParamStore::sizing`].
    pub fn with_capacity(len: usize) -> Self {
        let empty = |mut v: DeviceVec| {
            B::clear(&mut v);
            v
        };
        let values = empty(B::zeros(len));
        let grads = empty(B::zeros(len));
        Self { values, grads, ..Self::default() }
    }

    /// Adds a tensor, filled by `init`. Padding between tensors stays zero.
    pub fn add(&mut self, name: impl Into<String>, shape: Shape, init: impl FnOnce(&mut [f32])) -> ParamId {
        if let Some(len) = &mut self.sizing {
            // Saturating: a layout from a file may be absurd; the model checks the total
            // against memory before the real pass allocates it.
            let offset = len.div_ceil(ALIGN).saturating_mul(ALIGN);
            *len = offset.saturating_add(Shape::checked_numel(shape.dims()).unwrap_or(usize::MAX));
            self.entries.push(ParamEntry { name: name.into(), shape, offset, trainable: true });
            return ParamId(self.entries.len() - 1);
        }
        let offset = self.len().div_ceil(ALIGN) * ALIGN;
        let end = offset + shape.numel();
        {
            B::resize(&mut self.values, end);
            B::resize(&mut self.grads, end);
            B::write_with(B::range_mut(&mut self.values, offset..end), init);
        }
        self.entries.push(ParamEntry { name: name.into(), shape, offset, trainable: true });
        ParamId(self.entries.len() - 1)
    }

    pub fn entry(&self, id: ParamId) -> &ParamEntry {
        &self.entries[id.0]
    }
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries.iter().position(|e| e.name == name).map(ParamId)
    }
    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.entries.len()).map(ParamId)
    }
    pub fn set_trainable(&mut self, id: ParamId, trainable: bool) {
        self.entries[id.0].trainable = trainable;
    }

    /// One tensor's values, read on the host.
    pub fn value(&self, id: ParamId) -> HostRef<'_> {
        B::host(self.device_value(id))
    }
    pub fn value_mut(&mut self, id: ParamId) -> HostMut<'_> {
        B::host_mut(self.device_value_mut(id))
    }
    pub fn grad(&self, id: ParamId) -> HostRef<'_> {
        B::host(B::range(&self.grads, self.entries[id.0].range()))
    }
    /// One tensor's values where they live, for kernels.
    pub fn device_value(&self, id: ParamId) -> &DeviceSlice {
        B::range(&self.values, self.entries[id.0].range())
    }
    pub fn device_value_mut(&mut self, id: ParamId) -> &mut DeviceSlice {
        let r = self.entries[id.0].range();
        B::range_mut(&mut self.values, r)
    }

    /// The whole flat parameter buffer (including alignment padding), on the host.
    pub fn values(&self) -> HostRef<'_> {
        B::host(&self.values)
    }
    pub fn values_mut(&mut self) -> HostMut<'_> {
        B::host_mut(&mut self.values)
    }
    pub fn grads(&self) -> HostRef<'_> {
        B::host(&self.grads)
    }
    pub fn grads_mut(&mut self) -> HostMut<'_> {
        B::host_mut(&mut self.grads)
    }
    /// The flat buffers where they live, for kernels.
    pub fn device_values(&self) -> &DeviceSlice {
        &self.values
    }
    pub fn device_grads(&self) -> &DeviceSlice {
        &self.grads
    }
    pub fn device_grads_mut(&mut self) -> &mut DeviceSlice {
        &mut self.grads
    }
    /// Host views of the parameters (mutable) and gradients, with the tensor layout.
    pub fn host_parts_mut(&mut self) -> (HostMut<'_>, HostRef<'_>, &[ParamEntry]) {
        (B::host_mut(&mut self.values), B::host(&self.grads), &self.entries)
    }
    /// Parameters (mutable), gradients and the tensor layout at once, for optimizer steps.
    pub fn parts_mut(&mut self) -> (&mut DeviceSlice, &DeviceSlice, &[ParamEntry]) {
        (&mut self.values, &self.grads, &self.entries)
    }

    /// Length of the flat buffers.
    pub fn len(&self) -> usize {
        self.sizing.unwrap_or(B::len(&self.values))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of real parameters (excluding padding).
    pub fn count(&self) -> usize {
        self.entries.iter().map(|e| e.shape.numel()).sum()
    }

    pub fn zero_grads(&mut self) {
        B::fill(&mut self.grads, 0.0);
    }

    pub(crate) fn take_grads(&mut self) -> DeviceVec {
        std::mem::take(&mut self.grads)
    }
    pub(crate) fn restore_grads(&mut self, grads: DeviceVec) {
        self.grads = grads;
    }
}
