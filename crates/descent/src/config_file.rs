//! A TOML config file (experiment, study) read with the position of every key, so an error
//! points at the value that is wrong — its dotted key and its line — instead of the
//! table around it, and so numbers that are not finite are refused before serde sees
//! them (on the way to a typed config, NaN would become "absent" and the default used).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};

/// One value of the file: its dotted path (`model.layers[0].units`), the key's last
/// segment, where the value and its key lie in the text, and the raw text of a leaf.
#[derive(Clone, Debug)]
struct Node {
    path: String,
    key: String,
    span: Range<usize>,
    /// Where its key lies (toml points an unknown key's error at the key).
    key_span: Range<usize>,
    /// A leaf's value as written (strings quoted).
    leaf: Option<String>,
    /// A leaf's value as serde quotes it in messages (strings bare).
    bare: Option<String>,
    /// A float leaf's value.
    float: Option<f64>,
}

/// A parsed config text and the position of each of its values.
pub struct ConfigFile<'a> {
    text: &'a str,
    /// Every value in document order (a table before the values inside it).
    nodes: Vec<Node>,
}

impl<'a> ConfigFile<'a> {
    /// Parses `text` (a syntax error keeps toml's message, which shows the line).
    pub fn parse(text: &'a str) -> Result<ConfigFile<'a>> {
        let root = DeTable::parse(text).map_err(|e| Error::Config(e.to_string().trim_end().to_string()))?;
        let mut nodes = Vec::new();
        walk_table(root.get_ref(), "", &mut nodes);
        Ok(ConfigFile { text, nodes })
    }

    /// Refuses `nan`, `inf` and `-inf` anywhere in the file, and floats beyond f32's
    /// range, naming the first one's key and line. descent has no key where a
    /// non-finite number means something.
    pub fn check_finite(&self) -> Result<()> {
        for n in &self.nodes {
            let Some(raw) = &n.leaf else { continue };
            let unsigned = raw.trim_start_matches(['+', '-']);
            if unsigned == "nan" || unsigned == "inf" {
                return Err(self.error_at(n, &format!("{raw} is not a finite number (every number in a config must be finite)")));
            }
            // Weights, rates and hyperparameters are f32: beyond its range a value would
            // become infinite on the way in.
            if n.float.is_some_and(|x| x.abs() > f32::MAX as f64) {
                return Err(self.error_at(n, &format!("{raw} is beyond the range of 32-bit floats (±3.4e38)")));
            }
        }
        Ok(())
    }

    /// Every number in the file: its dotted key and where it is written (for tests that
    /// put a bad value at each in turn).
    pub fn numbers(&self) -> Vec<(String, Range<usize>)> {
        let is_number = |v: &str| v.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)) || v == "nan" || v == "inf";
        self.nodes.iter().filter(|n| n.leaf.as_deref().is_some_and(is_number)).map(|n| (n.path.clone(), n.span.clone())).collect()
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// A toml deserialization error, re-pointed at the value it is about: the value at
    /// the error's span, narrowed to the one key or literal inside it that the message
    /// names (serde loses positions inside tagged enums and name-or-table values, so
    /// toml alone points at the whole `layers` array or `optimizer` table).
    pub fn locate_toml_error(&self, e: &toml::de::Error) -> Error {
        let message = e.message().trim_end();
        match e.span().and_then(|s| self.node_at(&s)) {
            Some(n) => self.error_at(self.narrow(n, message), message),
            None => Error::Config(e.to_string().trim_end().to_string()),
        }
    }

    /// A validation error, located: `Error::Invalid { key, .. }` (a dotted path) goes to
    /// that key's line, narrowed to the key inside it the message names; others pass.
    pub fn locate(&self, e: Error) -> Error {
        match e {
            Error::Invalid { key, message } => match self.nodes.iter().find(|n| n.path == key) {
                Some(n) => self.error_at(self.narrow(n, &message), &message),
                None => Error::Invalid { key, message },
            },
            other => other,
        }
    }

    /// `line 18: `model.layers[0].units` = -64: message` and the line itself.
    fn error_at(&self, n: &Node, message: &str) -> Error {
        let line = self.line_of(n.span.start);
        let value = n.leaf.as_ref().map(|v| format!(" = {v}")).unwrap_or_default();
        let text = self.text.lines().nth(line - 1).unwrap_or("").trim_end();
        let key = if n.path.is_empty() { "the top level".to_string() } else { format!("`{}`", n.path) };
        Error::Config(format!("line {line}: {key}{value}: {message}\n{line:>5} | {text}"))
    }

    /// The value whose key is at `span`, else the smallest value containing `span`.
    fn node_at(&self, span: &Range<usize>) -> Option<&Node> {
        let within = |r: &Range<usize>| r.start <= span.start && span.end <= r.end;
        let key = self.nodes.iter().find(|n| n.key_span == *span);
        key.or_else(|| self.nodes.iter().filter(|n| within(&n.span)).min_by_key(|n| n.span.len()))
    }

    /// Inside a table or array value, the single value the message is about: the key or
    /// literal it quotes first (serde's "unknown field `x`", "integer `-64`"), else a
    /// key named as a word. Ambiguity keeps the outer value.
    fn narrow<'n>(&'n self, outer: &'n Node, message: &str) -> &'n Node {
        if outer.leaf.is_some() {
            return outer;
        }
        let inside: Vec<&Node> = self.nodes.iter().filter(|n| is_below(&n.path, &outer.path)).collect();
        let unique = |pred: &dyn Fn(&Node) -> bool| {
            let hits: Vec<&&Node> = inside.iter().filter(|n| pred(n)).collect();
            (hits.len() == 1).then(|| *hits[0])
        };
        // The first backquoted word: serde names the culprit first, then the choices
        // ("unknown field `activaton`, expected one of `units`, …"; "integer `-64`").
        if let Some(quoted) = message.split('`').nth(1) {
            if outer.key == quoted {
                return outer;
            }
            if let Some(n) = unique(&|n| n.key == quoted).or_else(|| unique(&|n| n.bare.as_deref() == Some(quoted))) {
                return n;
            }
        }
        // Keys named as words: one, or several along one path (`kernel_regularizer:
        // l2 = -1` names the table and the key in it) — then the innermost.
        let words: Vec<&Node> = inside.iter().copied().filter(|n| names_word(message, &n.key)).collect();
        match words.iter().max_by_key(|n| n.path.len()) {
            Some(deepest) if words.iter().all(|n| n.path == deepest.path || is_below(&deepest.path, &n.path)) => deepest,
            _ => outer,
        }
    }
}

fn is_below(path: &str, outer: &str) -> bool {
    path.len() > outer.len() && path.starts_with(outer) && (outer.is_empty() || matches!(path.as_bytes()[outer.len()], b'.' | b'['))
}

/// Whether `word` stands in `message` as a whole word (`beta_1 = 1.5`, not `beta_10`).
fn names_word(message: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    message.match_indices(word).any(|(i, _)| {
        let before = message[..i].chars().next_back();
        let after = message[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn walk_table(table: &DeTable, prefix: &str, out: &mut Vec<Node>) {
    for (k, v) in table.iter() {
        let key = k.get_ref().to_string();
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        walk_value(v, path, key, k.span(), out);
    }
}

fn walk_value(v: &Spanned<DeValue>, path: String, key: String, key_span: Range<usize>, out: &mut Vec<Node>) {
    let (leaf, bare) = match v.get_ref() {
        DeValue::String(s) => (Some(format!("{:?}", s.as_ref())), Some(s.to_string())),
        DeValue::Integer(i) => (Some(i.as_str().to_string()), None),
        DeValue::Float(f) => (Some(f.as_str().to_string()), None),
        DeValue::Boolean(b) => (Some(b.to_string()), None),
        DeValue::Datetime(d) => (Some(d.to_string()), None),
        DeValue::Array(_) | DeValue::Table(_) => (None, None),
    };
    let bare = bare.or_else(|| leaf.clone());
    let float = v.get_ref().as_float().and_then(|f| f.as_str().replace('_', "").parse::<f64>().ok());
    out.push(Node { path: path.clone(), key: key.clone(), span: v.span(), key_span: key_span.clone(), leaf, bare, float });
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, &path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                walk_value(item, format!("{path}[{i}]"), key.clone(), key_span.clone(), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "seed = 1\n[compile]\noptimizer = { name = \"adam\", beta_1 = 1.5 }\n[model]\nlayers = [\n  { type = \"dense\", units = -64 },\n  { type = \"dense\", units = 10 },\n]\n";

    #[test]
    fn non_finite_numbers_are_refused_at_their_key_and_line() {
        for bad in ["nan", "+nan", "-nan", "inf", "+inf", "-inf"] {
            let text = TEXT.replace("units = 10", &format!("units = 10, rate = {bad}"));
            let msg = ConfigFile::parse(&text).unwrap().check_finite().unwrap_err().to_string();
            assert!(msg.contains(&format!("line 7: `model.layers[1].rate` = {bad}: {bad} is not a finite number")), "{msg}");
        }
        let msg = ConfigFile::parse(&TEXT.replace("1.5", "3.5e38")).unwrap().check_finite().unwrap_err().to_string();
        assert!(msg.contains("`compile.optimizer.beta_1` = 3.5e38: 3.5e38 is beyond the range of 32-bit floats"), "{msg}");
        ConfigFile::parse(&TEXT.replace("1.5", "3.3e38")).unwrap().check_finite().unwrap();
        ConfigFile::parse(TEXT).unwrap().check_finite().unwrap();
    }

    #[test]
    fn validation_errors_go_to_the_key_the_message_names() {
        let f = ConfigFile::parse(TEXT).unwrap();
        let e = f.locate(Error::Invalid { key: "compile.optimizer".into(), message: "adam: beta_1 = 1.5 is outside [0, 1)".into() });
        let msg = e.to_string();
        assert!(msg.starts_with("invalid configuration: line 3: `compile.optimizer.beta_1` = 1.5: adam: beta_1"), "{msg}");
        assert!(msg.contains("    3 | optimizer = {"), "{msg}");
        // A key path that is not in the file stays as it was.
        let e = f.locate(Error::Invalid { key: "fit.epochs".into(), message: "must be at least 1".into() });
        assert_eq!(e.to_string(), "`fit.epochs`: must be at least 1");
    }

    #[test]
    fn serde_errors_inside_a_layer_list_point_at_the_value() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Model {
            layers: Vec<crate::nn::LayerConfig>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            model: Model,
        }
        let text = "[model]\nlayers = [\n  { type = \"dense\", units = 64 },\n  { type = \"dense\", units = -64 },\n]\n";
        let e = toml::from_str::<Doc>(text).unwrap_err();
        let msg = ConfigFile::parse(text).unwrap().locate_toml_error(&e).to_string();
        assert!(msg.contains("line 4: `model.layers[1].units` = -64: invalid value: integer `-64`"), "{msg}");
        // Two equal literals: the message cannot tell them apart, so the list is named.
        let text = text.replace("units = 64", "units = -64");
        let e = toml::from_str::<Doc>(&text).unwrap_err();
        let msg = ConfigFile::parse(&text).unwrap().locate_toml_error(&e).to_string();
        assert!(msg.contains("line 2: `model.layers`: invalid value"), "{msg}");
    }

    #[test]
    fn words_are_whole() {
        assert!(names_word("adam: beta_1 = 1.5", "beta_1"));
        assert!(!names_word("adam: beta_10 = 1.5", "beta_1"));
        assert!(!names_word("xbeta_1", "beta_1"));
        assert!(is_below("a.b", "a") && is_below("a[0]", "a") && !is_below("ab", "a") && is_below("a", ""));
    }
}
