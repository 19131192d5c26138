//! NumPy `.npy` and `.npz` files (any numeric dtype, converted to f32), via `npyz`.

use std::io::Read;
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Reads a C-ordered numeric array of up to 4 dimensions.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let npy = NpyFile::new(std::io::BufReader::new(file)).map_err(|e| Error::format(path, format!("not a valid .npy file: {e}")))?;
    to_tensor(npy, path, None)
}

/// Reads the array `key` (e.g. `x_train`) from an `.npz` archive.
pub fn read_npz(path: impl AsRef<Path>, key: &str) -> Result<Tensor> {
    let path = path.as_ref();
    let mut archive =
        npyz::npz::NpzArchive::open(path).map_err(|e| Error::format(path, format!("not a valid .npz archive: {e}")))?;
    let names: Vec<String> = archive.array_names().map(str::to_string).collect();
    let npy = archive
        .by_name(key)
        .map_err(|e| Error::format(path, format!("array `{key}`: {e}")))?
        .ok_or_else(|| Error::format(path, format!("no array named `{key}`; the archive holds: {}", names.join(", "))))?;
    to_tensor(npy, path, Some(key))
}

fn to_tensor<R: Read>(npy: NpyFile<R>, path: &Path, key: Option<&str>) -> Result<Tensor> {
    let what = key.map_or(String::new(), |k| format!("array `{k}`: "));
    if npy.order() == Order::Fortran {
        return Err(Error::format(path, format!("{what}Fortran-ordered arrays are not supported; save with np.ascontiguousarray")));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|d| *d as usize).collect();
    let DType::Plain(ts) = npy.dtype() else {
        return Err(Error::format(path, format!("{what}structured dtypes are not supported; save a plain numeric array")));
    };
    let bad = |e: std::io::Error| Error::format(path, format!("{what}{e}"));
    let data: Vec<f32> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(bad)?,
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Int, 1) => npy.into_vec::<i8>().map_err(bad)?.into_iter().map(f32::from).collect(),
        (TypeChar::Int, 2) => npy.into_vec::<i16>().map_err(bad)?.into_iter().map(f32::from).collect(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(bad)?.into_iter().map(f32::from).collect(),
        (TypeChar::Uint, 2) => npy.into_vec::<u16>().map_err(bad)?.into_iter().map(f32::from).collect(),
        (TypeChar::Uint, 4) => npy.into_vec::<u32>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Uint, 8) => npy.into_vec::<u64>().map_err(bad)?.into_iter().map(|v| v as f32).collect(),
        (TypeChar::Bool, _) => npy.into_vec::<bool>().map_err(bad)?.into_iter().map(|v| v as u8 as f32).collect(),
        _ => return Err(Error::format(path, format!("{what}dtype {ts} is not numeric"))),
    };
    let shape = if shape.is_empty() { vec![data.len()] } else { shape };
    let t = Tensor::new(data, &shape).map_err(|e| Error::format(path, format!("{what}{e}")))?;
    t.check_finite(&format!("{}{}", path.display(), key.map_or(String::new(), |k| format!(" [{k}]"))))?;
    Ok(t)
}

/// Writes a little-endian f32 `.npy` file (format 1.0, C order) of `shape`, its values
/// produced by `value(row, column)` and streamed to disk, so files larger than memory can
/// be made. A 1-D `shape` writes one value per row.
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], value: impl Fn(usize, usize) -> f32) -> Result<()> {
    use std::io::Write;
    let path = path.as_ref();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // The spec pads the header with spaces and a newline to a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let io = |e| Error::io(path, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    f.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    f.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    f.write_all(header.as_bytes()).map_err(io)?;
    let rows = shape.first().copied().unwrap_or(0);
    let cols: usize = shape.iter().skip(1).product::<usize>().max(1);
    for r in 0..rows {
        for c in 0..cols {
            f.write_all(&value(r, c).to_le_bytes()).map_err(io)?;
        }
    }
    f.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back_with_numpy_layout() {
        let path = std::env::temp_dir().join(format!("descent-write-npy-{}.npy", std::process::id()));
        write_npy_f32(&path, &[3, 2], |r, c| (10 * r + c) as f32).unwrap();
        let t = read_npy(&path).unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(t.data(), &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
        // The header is padded so the data starts on a 64-byte boundary, as numpy writes it.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0);
        write_npy_f32(&path, &[4], |r, _| r as f32).unwrap();
        assert_eq!(read_npy(&path).unwrap().dims(), &[4]);
        std::fs::remove_file(&path).unwrap();
    }

    /// A minimal version-1.0 .npy writer for tests (header padded to 64 bytes).
    fn npy_bytes(descr: &str, shape: &[usize], payload: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let tuple = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("descent-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_f4_f8_and_ints() {
        let f4: Vec<u8> = [1.0f32, 2.0, 3.0, 4.5, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = read_npy(tmp("a.npy", &npy_bytes("<f4", &[2, 3], &f4))).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.data()[3], 4.5);
        let f8: Vec<u8> = [0.25f64, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_npy(tmp("b.npy", &npy_bytes("<f8", &[2], &f8))).unwrap().data(), &[0.25, -1.0]);
        let i8s: Vec<u8> = [3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_npy(tmp("c.npy", &npy_bytes("<i8", &[2], &i8s))).unwrap().data(), &[3.0, 7.0]);
        let u1 = read_npy(tmp("d.npy", &npy_bytes("|u1", &[3], &[0, 128, 255]))).unwrap();
        assert_eq!(u1.data(), &[0.0, 128.0, 255.0]);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = read_npy(tmp("junk.npy", b"not numpy at all")).unwrap_err().to_string();
        assert!(e.contains("junk.npy") && e.contains("not a valid .npy"), "{e}");
        let nan: Vec<u8> = [1.0f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = read_npy(tmp("nan.npy", &npy_bytes("<f4", &[1, 2], &nan))).unwrap_err().to_string();
        assert!(e.contains("NaN at row 0, column 1"), "{e}");
        let short = npy_bytes("<f4", &[4], &[0u8; 8]);
        assert!(read_npy(tmp("short.npy", &short)).is_err());
    }

    #[test]
    fn reads_named_arrays_from_npz() {
        use npyz::WriterBuilder;
        let dir = std::env::temp_dir().join(format!("descent-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.npz");
        {
            let mut w = npyz::npz::NpzWriter::create(&p).unwrap();
            let mut x = w.array::<f32>("x", Default::default()).unwrap().default_dtype().shape(&[2, 2]).begin_nd().unwrap();
            x.extend([1.0f32, 2.0, 3.0, 4.0]).unwrap();
            x.finish().unwrap();
            let mut y = w.array::<i64>("y", Default::default()).unwrap().default_dtype().shape(&[2]).begin_nd().unwrap();
            y.extend([0i64, 1]).unwrap();
            y.finish().unwrap();
        }
        assert_eq!(read_npz(&p, "x").unwrap().dims(), &[2, 2]);
        assert_eq!(read_npz(&p, "y").unwrap().data(), &[0.0, 1.0]);
        let e = read_npz(&p, "labels").unwrap_err().to_string();
        assert!(e.contains("no array named `labels`") && e.contains("x") && e.contains("y"), "{e}");
    }
}
