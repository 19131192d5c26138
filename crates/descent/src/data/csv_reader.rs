//! CSV files: one sample per row, numeric cells, an optional header, one label column.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The target column, by header name or by 0-based index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelColumn {
    Name(String),
    Index(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    pub has_header: bool,
    /// `None`: every column is a feature (for prediction inputs).
    pub label_column: Option<LabelColumn>,
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { has_header: true, label_column: None, delimiter: b',' }
    }
}

/// Reads features and (if a label column is named) targets `[samples, 1]`.
/// Errors name the file, the line and the column of the offending cell.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<(Tensor, Option<Tensor>)> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(options.has_header)
        .delimiter(options.delimiter)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let headers: Vec<String> = if options.has_header {
        reader.headers().map_err(|e| csv_error(path, e))?.iter().map(str::to_string).collect()
    } else {
        Vec::new()
    };
    let label_idx = match &options.label_column {
        None => None,
        Some(LabelColumn::Index(i)) => Some(*i),
        Some(LabelColumn::Name(name)) => {
            if !options.has_header {
                return Err(Error::format(path, format!("label column `{name}` given by name, but the file has no header (use its index)")));
            }
            Some(headers.iter().position(|h| h == name).ok_or_else(|| {
                Error::format(path, format!("no column named `{name}`; columns are: {}", preview(&headers)))
            })?)
        }
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut width = None;
    let mut rows = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = record.position().map_or(rows + 1, |p| p.line() as usize);
        let n = record.len();
        if let Some(i) = label_idx {
            if i >= n {
                return Err(Error::format(path, format!("line {line}: label column {i} does not exist (the row has {n} columns)")));
            }
        }
        match width {
            None => width = Some(n),
            Some(w) if w != n => {
                return Err(Error::format(path, format!("line {line}: {n} columns, but earlier rows have {w}")));
            }
            _ => {}
        }
        for (c, cell) in record.iter().enumerate() {
            let column = headers.get(c).map_or_else(|| format!("{c}"), |h| format!("`{h}`"));
            let v: f32 = cell.parse().map_err(|_| {
                Error::format(path, format!("line {line}, column {column}: cannot read `{cell}` as a number"))
            })?;
            if !v.is_finite() {
                return Err(Error::data(
                    path.display().to_string(),
                    format!("{} at line {line}, column {column}", if v.is_nan() { "NaN" } else { "infinity" }),
                ));
            }
            if Some(c) == label_idx {
                y.push(v);
            } else {
                x.push(v);
            }
        }
        rows += 1;
    }
    if rows == 0 {
        let hint = if options.has_header { " (the first line is read as the header)" } else { "" };
        return Err(Error::format(path, format!("no data rows{hint}")));
    }
    let features = width.unwrap_or(0) - label_idx.map_or(0, |_| 1);
    let x = Tensor::new(x, &[rows, features])?;
    let y = label_idx.map(|_| Tensor::new(y, &[rows, 1])).transpose()?;
    Ok((x, y))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| format!("line {}: ", p.line())).unwrap_or_default();
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} columns, but earlier rows have {expected_len}")
        }
        _ => e.to_string(),
    };
    Error::format(path, format!("{line}{message}"))
}

fn preview(names: &[String]) -> String {
    if names.len() <= 8 {
        names.join(", ")
    } else {
        format!("{}, … {} (and {} more)", names[..4].join(", "), names[names.len() - 1], names.len() - 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("descent-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn labelled() -> CsvOptions {
        CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() }
    }

    #[test]
    fn reads_features_and_labels() {
        let p = write("ok.csv", "a,label,b\n1,0,2\n3,1,4\n");
        let (x, y) = read_csv(&p, &labelled()).unwrap();
        assert_eq!(x.dims(), &[2, 2]);
        assert_eq!(x.data(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(y.unwrap().data(), &[0.0, 1.0]);
    }

    #[test]
    fn errors_say_where() {
        let p = write("bad.csv", "a,label\n1,0\n2,x\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("line 3") && e.contains("`label`") && e.contains("`x`"), "{e}");
        let p = write("nan.csv", "a,label\n1,0\nnan,1\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("NaN at line 3, column `a`"), "{e}");
        let p = write("ragged.csv", "a,label\n1,0\n1,2,3\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("3 columns"), "{e}");
        let p = write("nolabel.csv", "a,b\n1,0\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("no column named `label`") && e.contains("a, b"), "{e}");
        let e = read_csv("/nonexistent/x.csv", &labelled()).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x.csv"), "{e}");
    }
}
