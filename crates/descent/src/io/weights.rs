//! Weights as safetensors: `<layer>.kernel` `[in, out]` and `<layer>.bias` `[out]`, f32,
//! readable by numpy, PyTorch and Keras tooling.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::write_atomic;
use crate::autograd::ParamStore;
use crate::error::{Error, Result};
use crate::nn::Network;

/// Serializes named f32 buffers (name, shape, data) into safetensors bytes.
pub fn tensors_to_bytes(tensors: &[(String, Vec<usize>, &[f32])], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView)> = raw
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| Error::State(e.to_string()))?)))
        .collect::<Result<_>>()?;
    safetensors::serialize(views, metadata).map_err(|e| Error::State(format!("safetensors: {e}")))
}

/// Named f32 tensors as safetensors bytes (for tests and exporters).
pub fn weights_to_bytes_named(tensors: &[(&str, Vec<usize>, &[f32])]) -> Vec<u8> {
    let owned: Vec<(String, Vec<usize>, &[f32])> = tensors.iter().map(|(n, s, d)| (n.to_string(), s.clone(), *d)).collect();
    tensors_to_bytes(&owned, None).expect("valid shapes")
}

/// The model's parameters as safetensors bytes.
pub fn weights_to_bytes(store: &ParamStore) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        store.ids().map(|id| {
            let e = store.entry(id);
            (e.name.clone(), e.shape.dims().to_vec(), store.value(id))
        }).collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "descent".to_string());
    tensors_to_bytes(&tensors, Some(meta))
}

/// Writes the model's weights (atomically).
pub fn save_weights(model: &Network, path: impl AsRef<Path>) -> Result<()> {
    write_atomic(path, &weights_to_bytes(model.params())?)
}

/// Reads a tensor as f32 (from F32, F64 or BF16 storage).
pub(crate) fn view_to_f32(view: &TensorView, path: &Path, name: &str) -> Result<Vec<f32>> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect(),
        Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect(),
        d => return Err(Error::format(path, format!("tensor `{name}` has dtype {d:?}; descent reads F32, F64 and BF16"))),
    })
}

/// Why `bytes` are not a whole safetensors file, in terms of what its header claims
/// (format: an 8-byte little-endian header length, a JSON header giving each tensor's
/// `data_offsets`, then the data), where that can be told; else the crate's own words.
pub fn safetensors_problem(bytes: &[u8], e: &safetensors::SafeTensorError) -> String {
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else {
        return format!("the file has {} bytes; a safetensors file starts with an 8-byte header length", bytes.len());
    };
    let rest = bytes.len() as u64 - 8;
    if len > rest {
        return format!("the header claims {len} bytes but only {rest} follow its length (truncated?)");
    }
    let header: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&bytes[8..8 + len as usize]).ok();
    let data = rest - len;
    let ends = header.iter().flatten().filter_map(|(name, t)| Some((name.clone(), t.get("data_offsets")?.get(1)?.as_u64()?)));
    match ends.max_by_key(|(_, end)| *end) {
        Some((name, end)) if end > data => format!("tensor `{name}` ends at byte {end} of the data, but the file holds {data} data bytes (truncated?)"),
        Some((_, end)) if end < data => format!("{} bytes follow the last tensor (the file is longer than its header says)", data - end),
        _ => e.to_string(),
    }
}

/// Loads weights into a built model. Each parameter `<layer>.kernel` is looked up by name;
/// a PyTorch-style `<layer>.weight` of shape `[out, in]` is accepted and transposed, so
/// models exported from PyTorch (`nn.Linear`) or Keras load directly.
pub fn load_weights(model: &mut Network, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if !model.is_built() {
        return Err(Error::State("load_weights: build the model (give input_shape) before loading weights".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_weights_from_bytes(model, &bytes, path)
}

/// [`load_weights`] from the bytes of the file at `path` (named in errors).
pub fn load_weights_from_bytes(model: &mut Network, bytes: &[u8], path: &Path) -> Result<()> {
    if !model.is_built() {
        return Err(Error::State("load_weights: build the model (give input_shape) before loading weights".into()));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::format(path, format!("not a valid safetensors file: {}", safetensors_problem(bytes, &e))))?;
    let available: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    let store = model.params_mut();
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        let entry = store.entry(id).clone();
        let want = entry.shape.dims().to_vec();
        let values = match st.tensor(&entry.name) {
            Ok(view) => {
                if view.shape() != want.as_slice() {
                    return Err(Error::shape(format!("weight `{}` in {}", entry.name, path.display()), format!("{want:?}"), format!("{:?}", view.shape())));
                }
                view_to_f32(&view, path, &entry.name)?
            }
            Err(_) => {
                let torch_name = entry.name.strip_suffix(".kernel").map(|l| format!("{l}.weight"));
                match torch_name.as_deref().and_then(|n| st.tensor(n).ok().map(|v| (n.to_string(), v))) {
                    Some((n, view)) if want.len() == 2 && view.shape() == [want[1], want[0]] => {
                        let t = view_to_f32(&view, path, &n)?;
                        let (rows, cols) = (want[1], want[0]);
                        let mut out = vec![0.0; t.len()];
                        for r in 0..rows {
                            for c in 0..cols {
                                out[c * rows + r] = t[r * cols + c];
                            }
                        }
                        out
                    }
                    Some((n, view)) => {
                        return Err(Error::shape(
                            format!("weight `{n}` (PyTorch layout [out, in]) in {}", path.display()),
                            format!("[{}, {}]", want.get(1).copied().unwrap_or(0), want[0]),
                            format!("{:?}", view.shape()),
                        ))
                    }
                    None => {
                        return Err(Error::format(
                            path,
                            format!("no tensor named `{}`; the file holds: {}", entry.name, available.join(", ")),
                        ))
                    }
                }
            }
        };
        store.value_mut(id).copy_from_slice(&values);
    }
    Ok(())
}
