//! MNIST's IDX format: magic (0, 0, dtype, rank), big-endian u32 dimensions, then data.
//! A file ending in `.gz` is read through gzip (as Debian's `dataset-fashion-mnist`
//! ships them).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Reads an IDX file (e.g. `train-images-idx3-ubyte`) into f32, keeping raw values.
pub fn read_idx(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        // Decompress the header first, then at most the data it claims (plus one byte to
        // see trailing data): a small hostile archive cannot expand without bound.
        let gz_err = |e: std::io::Error| Error::format(path, format!("not a readable gzip file ({e})"));
        let mut gz = flate2::read::GzDecoder::new(bytes.as_slice());
        let mut raw = Vec::new();
        (&mut gz).take(4).read_to_end(&mut raw).map_err(gz_err)?;
        let rank = raw.get(3).copied().unwrap_or(0) as u64;
        (&mut gz).take(4 * rank.min(4)).read_to_end(&mut raw).map_err(gz_err)?;
        let dims = raw[4.min(raw.len())..].chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize);
        let claimed = dims.fold(Some(8usize), |n, d| n.and_then(|n| n.checked_mul(d))).unwrap_or(usize::MAX);
        gz.take(claimed.saturating_add(1) as u64).read_to_end(&mut raw).map_err(gz_err)?;
        bytes = raw;
    }
    let bad = |m: String| Error::format(path, m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (the magic number must start with two zero bytes)".into()));
    }
    let (dtype, rank) = (bytes[2], bytes[3] as usize);
    let width = match dtype {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        t => return Err(bad(format!("unknown IDX data type 0x{t:02X}"))),
    };
    if rank == 0 || rank > 4 {
        return Err(bad(format!("IDX rank {rank} is not supported (1 to 4)")));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let need = crate::tensor::Shape::checked_numel(&dims).and_then(|n| n.checked_mul(width));
    let body = &bytes[header..];
    match need {
        None => return Err(bad(format!("dimensions {dims:?} claim more elements than can exist (the header is corrupt)"))),
        Some(need) if body.len() != need => {
            let how = if body.len() < need { "truncated?" } else { "trailing bytes?" };
            return Err(bad(format!("dimensions {dims:?} of {width}-byte values need {need} data bytes, the file has {} ({how})", body.len())));
        }
        Some(_) => {}
    }
    let data: Vec<f32> = match dtype {
        0x08 => body.iter().map(|b| *b as f32).collect(),
        0x09 => body.iter().map(|b| *b as i8 as f32).collect(),
        0x0B => body.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as f32).collect(),
        0x0C => body.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().expect("4")) as f32).collect(),
        0x0D => body.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().expect("4"))).collect(),
        _ => body.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().expect("8")) as f32).collect(),
    };
    let t = Tensor::new(data, &dims)?;
    t.check_finite(&path.display().to_string())?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ubyte_images_and_rejects_truncation() {
        let dir = std::env::temp_dir().join(format!("descent-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        bytes.extend(0u8..8);
        let p = dir.join("imgs.idx");
        std::fs::write(&p, &bytes).unwrap();
        let t = read_idx(&p).unwrap();
        assert_eq!(t.dims(), &[2, 2, 2]);
        assert_eq!(t.data()[7], 7.0);
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("need 8 data bytes, the file has 7 (truncated?)"), "{e}");
        // A hostile header: four dimensions of 2^32 − 1 overflow any size (they used to
        // wrap); a gzip of it is refused without expanding more than the header.
        let mut hostile = vec![0, 0, 0x08, 4];
        hostile.extend([0xFF; 16]);
        hostile.extend(0u8..8);
        std::fs::write(&p, &hostile).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("claim more elements than can exist"), "{e}");
        let gz = dir.join("imgs.idx.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &bytes[..bytes.len() - 1]).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let e = read_idx(&gz).unwrap_err().to_string();
        assert!(e.contains("need 8 data bytes, the file has 7 (truncated?)"), "{e}");
        // Trailing data past the claim is seen, not silently dropped.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &[&bytes[..], &[9, 9][..]].concat()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let e = read_idx(&gz).unwrap_err().to_string();
        assert!(e.contains("the file has 10 (trailing bytes?)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
