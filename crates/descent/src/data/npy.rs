//! NumPy `.npy` and `.npz` files (any numeric dtype, converted to f32), via `npyz`.

use std::io::Read;
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

/// What descent checks of a `.npy` header before any data is read (format spec:
/// numpy.lib.format — magic `\x93NUMPY`, version, a little-endian header length, then a
/// Python dict literal with `descr`, `fortran_order` and `shape`).
#[derive(Debug)]
pub(crate) struct NpyHeader {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Where the data starts (the bytes after it hold at least what the shape claims).
    pub data_offset: u64,
}

/// Reads and checks the header at the start of `r`, from a file (or archive member) of
/// `total_len` bytes: the header length and the data its shape claims must fit in it.
pub(crate) fn read_npy_header(r: &mut impl Read, total_len: u64) -> std::result::Result<NpyHeader, String> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head[..10]).map_err(|_| "too short for a .npy header".to_string())?;
    if &head[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_len, start) = if head[6] == 1 {
        (u16::from_le_bytes([head[8], head[9]]) as u64, 10)
    } else {
        r.read_exact(&mut head[10..12]).map_err(|_| "too short for a .npy header".to_string())?;
        (u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64, 12)
    };
    // As numpy's own reader (`max_header_size`): a real header is a few hundred bytes.
    if header_len > 10_000 {
        return Err(format!("the header claims {header_len} bytes; numpy itself refuses headers over 10,000"));
    }
    if start + header_len > total_len {
        return Err(format!("the header claims {header_len} bytes but the file has {total_len} in all (truncated?)"));
    }
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).map_err(|_| "truncated header".to_string())?;
    let header = String::from_utf8_lossy(&header).into_owned();
    // A plain array's header is one dict holding a shape tuple: deeper nesting (or a
    // list, as structured dtypes have) is refused here, before npyz's parser, which
    // backtracks exponentially on deep brackets (fuzzing found a 10 s hang on 40 `[`).
    let mut depth = 0usize;
    for c in header.chars() {
        match c {
            '[' => return Err("structured dtypes are not supported; save a plain numeric array".into()),
            '{' | '(' => {
                depth += 1;
                if depth > 2 {
                    return Err("the header is not a plain dict of descr, fortran_order and shape".into());
                }
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").and_then(|r| r.strip_prefix('\'')?.split('\'').next()).ok_or("no `descr` in the header")?.to_string();
    let fortran_order = field("fortran_order").is_some_and(|r| r.starts_with("True"));
    let shape_text = field("shape").and_then(|r| r.strip_prefix('(')?.split(')').next()).ok_or("no `shape` in the header")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("shape ({shape_text}) is not a tuple of sizes")))
        .collect::<std::result::Result<_, _>>()?;
    let item: u64 = descr.get(2..).and_then(|d| d.parse().ok()).ok_or_else(|| format!("dtype `{descr}` is not numeric"))?;
    // Checked arithmetic: a product that would wrap is an error, not a small number
    // that passes the size check.
    let data_bytes = Shape::checked_numel(&shape).and_then(|n| (n as u64).checked_mul(item));
    let Some(data_bytes) = data_bytes else {
        return Err(format!("shape {shape:?} claims more elements than can exist (the header is corrupt)"));
    };
    let data_offset = start + header_len;
    if total_len - data_offset < data_bytes {
        return Err(format!(
            "the header's shape {shape:?} of `{descr}` needs {data_bytes} data bytes but the file has {} (truncated?)",
            total_len - data_offset
        ));
    }
    Ok(NpyHeader { descr, fortran_order, shape, data_offset })
}

/// Reads a C-ordered numeric array of up to 4 dimensions.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    // Checked by descent first: npyz multiplies the shape without checking.
    read_npy_header(&mut file, len).map_err(|m| Error::format(path, format!("not a usable .npy file: {m}")))?;
    std::io::Seek::rewind(&mut file).map_err(|e| Error::io(path, e))?;
    let npy = NpyFile::new(std::io::BufReader::new(file)).map_err(|e| Error::format(path, format!("not a valid .npy file: {e}")))?;
    to_tensor(npy, path, None)
}

/// Reads the array `key` (e.g. `x_train`) from an `.npz` archive.
pub fn read_npz(path: impl AsRef<Path>, key: &str) -> Result<Tensor> {
    let path = path.as_ref();
    let not_npz = |e: zip::result::ZipError| Error::format(path, format!("not a valid .npz archive: {e}"));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).map_err(|e| Error::io(path, e))?).map_err(not_npz)?;
    let member = format!("{key}.npy");
    if archive.by_name(&member).is_err() {
        let names: Vec<&str> = archive.file_names().filter_map(npyz::npz::array_name_from_file_name).collect();
        return Err(Error::format(path, format!("no array named `{key}`; the archive holds: {}", names.join(", "))));
    }
    // The member's header is checked against its size before npyz reads it.
    let mut entry = archive.by_name(&member).map_err(not_npz)?;
    let size = entry.size();
    read_npy_header(&mut entry, size).map_err(|m| Error::format(path, format!("array `{key}`: {m}")))?;
    drop(entry);
    let entry = archive.by_name(&member).map_err(not_npz)?;
    let npy = NpyFile::new(entry).map_err(|e| Error::format(path, format!("array `{key}`: {e}")))?;
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
        assert!(e.contains("junk.npy: not a usable .npy file: missing the"), "{e}");
        let nan: Vec<u8> = [1.0f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = read_npy(tmp("nan.npy", &npy_bytes("<f4", &[1, 2], &nan))).unwrap_err().to_string();
        assert!(e.contains("NaN at row 0, column 1"), "{e}");
        // Truncated: what the header claims and what the file has, not "failed to fill
        // whole buffer".
        let short = npy_bytes("<f4", &[4], &[0u8; 8]);
        let e = read_npy(tmp("short.npy", &short)).unwrap_err().to_string();
        assert!(e.contains("short.npy: not a usable .npy file: the header's shape [4] of `<f4` needs 16 data bytes but the file has 8 (truncated?)"), "{e}");
        // Hostile headers: a product past usize (it used to wrap) and a huge honest one;
        // both refused before anything is allocated.
        for (shape, want) in [(vec![1usize << 60, 1 << 10], "claims more elements than can exist"), (vec![1 << 40, 1 << 10], "needs 4503599627370496 data bytes but the file has 8")] {
            let e = read_npy(tmp("hostile.npy", &npy_bytes("<f4", &shape, &[0u8; 8]))).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
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
        // A member whose data ends before its shape says names the array and the claim.
        let cut = dir.join("cut.npz");
        {
            use std::io::Write;
            let mut z = zip::ZipWriter::new(std::fs::File::create(&cut).unwrap());
            z.start_file("x.npy", zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
            z.write_all(&npy_bytes("<f4", &[2, 2], &[0u8; 12])).unwrap();
            z.finish().unwrap();
        }
        let e = read_npz(&cut, "x").unwrap_err().to_string();
        assert!(e.contains("array `x`: the header's shape [2, 2] of `<f4` needs 16 data bytes but the file has 12 (truncated?)"), "{e}");
    }
}
