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
    /// Text columns to one-hot encode (by header name), in place of the column.
    pub categorical: Vec<Categories>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { has_header: true, label_column: None, delimiter: b',', categorical: Vec::new() }
    }
}

/// A one-hot encoded column: its name and its categories, in encoding order. Empty
/// `values` are learned from the file (sorted); saved with a model, they encode new data
/// the same way (a value not seen in training encodes as all zeros).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Categories {
    pub column: String,
    pub values: Vec<String>,
}

impl Categories {
    pub fn learn(column: &str) -> Categories {
        Categories { column: column.into(), values: Vec::new() }
    }
}

/// Reads features and (if a label column is named) targets `[samples, 1]`.
/// Errors name the file, the line and the column of the offending cell.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<(Tensor, Option<Tensor>)> {
    read_csv_encoded(path, options).map(|(x, y, _)| (x, y))
}

/// The categories of `columns` in the file: each column's distinct values, sorted.
fn learn_categories(path: &Path, options: &CsvOptions, headers: &[String]) -> Result<Vec<Categories>> {
    let mut sets: Vec<(usize, std::collections::BTreeSet<String>)> = Vec::new();
    for c in &options.categorical {
        let idx = headers.iter().position(|h| *h == c.column).ok_or_else(|| {
            Error::format(path, format!("categorical column `{}` is not in the header; columns are: {}", c.column, preview(headers)))
        })?;
        sets.push((idx, c.values.iter().cloned().collect()));
    }
    if options.categorical.iter().any(|c| c.values.is_empty()) {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).delimiter(options.delimiter).trim(csv::Trim::All).from_path(path).map_err(|e| csv_error(path, e))?;
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(|e| csv_error(path, e))? {
            for ((idx, set), c) in sets.iter_mut().zip(&options.categorical) {
                if c.values.is_empty() {
                    if let Some(v) = record.get(*idx) {
                        set.insert(v.to_string());
                    }
                }
            }
        }
    }
    Ok(options.categorical.iter().zip(sets).map(|(c, (_, set))| Categories { column: c.column.clone(), values: if c.values.is_empty() { set.into_iter().collect() } else { c.values.clone() } }).collect())
}

/// The categories `read_csv_encoded` would use for `options.categorical` (one scan).
pub fn csv_categories(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Vec<Categories>> {
    let path = path.as_ref();
    if options.categorical.is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).delimiter(options.delimiter).trim(csv::Trim::All).from_path(path).map_err(|e| csv_error(path, e))?;
    let headers: Vec<String> = reader.headers().map_err(|e| csv_error(path, e))?.iter().map(str::to_string).collect();
    learn_categories(path, options, &headers)
}

/// [`read_csv`], also returning the categories used for the categorical columns.
pub fn read_csv_encoded(path: impl AsRef<Path>, options: &CsvOptions) -> Result<(Tensor, Option<Tensor>, Vec<Categories>)> {
    read_csv_lines(path.as_ref(), options).map(|(x, y, c, _)| (x, y, c))
}

/// A labelled CSV file as a data set that knows each sample's line in the file (for
/// errors found after it is split and shuffled).
pub fn read_csv_dataset(path: impl AsRef<Path>, options: &CsvOptions) -> Result<super::Dataset> {
    let path = path.as_ref();
    let (x, y, _, lines) = read_csv_lines(path, options)?;
    let y = y.ok_or_else(|| Error::format(path, "a label column is needed"))?;
    let mut d = super::Dataset::new(x, y, path.display().to_string())?;
    d.positions = Some(std::sync::Arc::new(lines));
    d.position_unit = "line";
    Ok(d)
}

/// [`read_csv_encoded`] plus the file line of each row read.
fn read_csv_lines(path: &Path, options: &CsvOptions) -> Result<(Tensor, Option<Tensor>, Vec<Categories>, Vec<usize>)> {
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
    if is_blank(path) {
        return Err(Error::format(path, "the file is empty"));
    }
    check_header(path, &headers)?;
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
    if !options.categorical.is_empty() && !options.has_header {
        return Err(Error::format(path, "categorical columns are named, so the file needs a header"));
    }
    let categories = learn_categories(path, options, &headers)?;
    // Column index → its categories, for the one-hot columns.
    let onehot: Vec<Option<&Categories>> = (0..headers.len()).map(|c| categories.iter().find(|k| k.column == headers[c])).collect();
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut width = None;
    let mut rows = 0usize;
    let mut lines = Vec::new();
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
            if let Some(Some(cat)) = onehot.get(c) {
                if Some(c) == label_idx {
                    return Err(Error::format(path, format!("the label column `{}` cannot also be categorical", cat.column)));
                }
                x.extend(cat.values.iter().map(|v| (v == cell) as u8 as f32));
                continue;
            }
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
        lines.push(line);
    }
    if rows == 0 {
        let hint = if options.has_header { " (the first line is read as the header)" } else { "" };
        return Err(Error::format(path, format!("no data rows{hint}")));
    }
    let extra: usize = categories.iter().map(|c| c.values.len()).sum::<usize>() - categories.len();
    let features = width.unwrap_or(0) - label_idx.map_or(0, |_| 1) + extra;
    let x = Tensor::new(x, &[rows, features])?;
    // A label column of whole numbers holds classes: read as integers.
    let y = label_idx.map(|_| Tensor::new(y, &[rows, 1]).map(Tensor::into_classes_if_whole)).transpose()?;
    Ok((x, y, categories, lines))
}

/// Whether the file holds nothing but whitespace (read no further than that can be).
pub(crate) fn is_blank(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    read.is_ok() && head.len() < 4096 && head.iter().all(u8::is_ascii_whitespace)
}

/// A header naming two columns alike would make a column by name ambiguous: an error
/// naming both positions (1-based, as a spreadsheet counts them).
pub(crate) fn check_header(path: &Path, headers: &[String]) -> Result<()> {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        if let Some(j) = first.insert(h.as_str(), i) {
            return Err(Error::format(path, format!("line 1: columns {} and {} of the header are both named `{h}`", j + 1, i + 1)));
        }
    }
    Ok(())
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

    #[test]
    fn categorical_columns_become_one_hot() {
        let path = write("cat.csv", "size,color,label\n1.5,red,0\n2.0,blue,1\n0.5,green,1\n1.0,red,0\n");
        let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), categorical: vec![Categories::learn("color")], ..Default::default() };
        let (x, y, cats) = read_csv_encoded(&path, &options).unwrap();
        assert_eq!(cats, vec![Categories { column: "color".into(), values: vec!["blue".into(), "green".into(), "red".into()] }]);
        assert_eq!(x.dims(), &[4, 4]);
        assert_eq!(x.row(0), &[1.5, 0.0, 0.0, 1.0]);
        assert_eq!(x.row(1), &[2.0, 1.0, 0.0, 0.0]);
        assert_eq!(y.unwrap().data(), &[0.0, 1.0, 1.0, 0.0]);
        // With the saved categories, new data encodes the same way; unseen values are zeros.
        let new = write("cat2.csv", "size,color\n3.0,purple\n1.0,green\n");
        let fixed = CsvOptions { categorical: cats, ..Default::default() };
        let (x2, _, _) = read_csv_encoded(&new, &fixed).unwrap();
        assert_eq!(x2.data(), &[3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        let bad = CsvOptions { categorical: vec![Categories::learn("colour")], ..Default::default() };
        assert!(read_csv_encoded(&new, &bad).unwrap_err().to_string().contains("`colour` is not in the header"));
    }

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
        let y = y.unwrap();
        assert_eq!(y.data(), &[0.0, 1.0]);
        // A label column of whole numbers is read as integer classes; any other stays values.
        assert_eq!(y.classes(), Some(&[0, 1][..]));
        let p = write("prices.csv", "a,label\n1,0.5\n3,2\n");
        let (_, y) = read_csv(&p, &labelled()).unwrap();
        assert!(!y.unwrap().is_classes());
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
        let p = write("dup.csv", "a,b,label,b\n1,2,0,3\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("dup.csv: line 1: columns 2 and 4 of the header are both named `b`"), "{e}");
        let p = write("empty.csv", "");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("empty.csv: the file is empty"), "{e}");
        let p = write("header_only.csv", "a,label\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("no data rows (the first line is read as the header)"), "{e}");
        let p = write("nolabel.csv", "a,b\n1,0\n");
        let e = read_csv(&p, &labelled()).unwrap_err().to_string();
        assert!(e.contains("no column named `label`") && e.contains("a, b"), "{e}");
        let e = read_csv("/nonexistent/x.csv", &labelled()).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x.csv"), "{e}");
    }
}
