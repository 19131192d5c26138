//! Search spaces: distributions over hyperparameters, conditions between them, and
//! applying a chosen point to an experiment by dotted key path.
//!
//! A TOML study names each parameter by its path in the experiment file, e.g.
//! `compile.optimizer.learning_rate` or `model.layers.0.units`, so any key of an
//! experiment can be searched without descent knowing about it in advance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use descent::experiment::Experiment;
use descent::{Error, Result};

/// A hyperparameter value as stored in trials and written into experiments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn to_toml(&self) -> toml::Value {
        match self {
            ParamValue::Bool(b) => toml::Value::Boolean(*b),
            ParamValue::Int(i) => toml::Value::Integer(*i),
            ParamValue::Float(f) => toml::Value::Float(*f),
            ParamValue::Str(s) => toml::Value::String(s.clone()),
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) if x.abs() >= 1e-3 && x.abs() < 1e4 => write!(f, "{x:.4}"),
            ParamValue::Float(x) => write!(f, "{x:.3e}"),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// The values of one trial, by parameter name.
pub type Params = BTreeMap<String, ParamValue>;

/// Where a parameter's values come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Uniform on [low, high].
    Uniform { low: f64, high: f64 },
    /// Uniform in log space on [low, high] (learning rates, decays): low > 0.
    LogUniform { low: f64, high: f64 },
    /// Integers low..=high in steps of `step`, optionally uniform in log space.
    Int {
        low: i64,
        high: i64,
        #[serde(default = "one")]
        step: i64,
        #[serde(default)]
        log: bool,
    },
    /// One of a list.
    Categorical { choices: Vec<ParamValue> },
}

fn one() -> i64 {
    1
}

impl Distribution {
    pub fn check(&self, name: &str) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(&format!("space.{name}"), m));
        match self {
            Distribution::Uniform { low, high } if !(low.is_finite() && high.is_finite() && low < high) => {
                bad(format!("needs finite low < high, got [{low}, {high}]"))
            }
            Distribution::LogUniform { low, high } if !(*low > 0.0 && high.is_finite() && low < high) => {
                bad(format!("needs 0 < low < high, got [{low}, {high}]"))
            }
            Distribution::Int { low, high, step, log } => {
                if low > high || *step < 1 {
                    bad(format!("needs low ≤ high and step ≥ 1, got [{low}, {high}] step {step}"))
                } else if *log && (*low < 1 || *step != 1) {
                    bad("a log-scale integer needs low ≥ 1 and step 1".into())
                } else {
                    Ok(())
                }
            }
            Distribution::Categorical { choices } if choices.is_empty() => bad("categorical needs at least one choice".into()),
            _ => Ok(()),
        }
    }

    /// Whether samplers work on it in log space.
    pub fn is_log(&self) -> bool {
        matches!(self, Distribution::LogUniform { .. } | Distribution::Int { log: true, .. })
    }

    /// Numeric range in the sampler's internal space (log applied), for numeric kinds.
    pub fn internal_range(&self) -> Option<(f64, f64)> {
        match self {
            Distribution::Uniform { low, high } => Some((*low, *high)),
            Distribution::LogUniform { low, high } => Some((low.ln(), high.ln())),
            // Integers are widened by half a step so each value owns an equal interval.
            Distribution::Int { low, high, log: true, .. } => Some(((*low as f64 - 0.5).ln(), (*high as f64 + 0.5).ln())),
            Distribution::Int { low, high, step, .. } => Some((*low as f64 - 0.5 * *step as f64, *high as f64 + 0.5 * *step as f64)),
            Distribution::Categorical { .. } => None,
        }
    }

    /// A value from an internal-space number (clamped and rounded onto the grid).
    pub fn from_internal(&self, x: f64) -> ParamValue {
        match self {
            Distribution::Uniform { low, high } => ParamValue::Float(x.clamp(*low, *high)),
            Distribution::LogUniform { low, high } => ParamValue::Float(x.exp().clamp(*low, *high)),
            Distribution::Int { low, high, step, log } => {
                let v = if *log { x.exp() } else { x };
                let k = ((v - *low as f64) / *step as f64).round() as i64;
                ParamValue::Int((low + k * step).clamp(*low, high - (high - low) % step))
            }
            Distribution::Categorical { choices } => choices[(x.max(0.0) as usize).min(choices.len() - 1)].clone(),
        }
    }

    /// A value's position in the internal space (category index for categoricals).
    pub fn to_internal(&self, v: &ParamValue) -> Option<f64> {
        match self {
            Distribution::Categorical { choices } => choices.iter().position(|c| c == v).map(|i| i as f64),
            d if d.is_log() => v.as_f64().map(f64::ln),
            _ => v.as_f64(),
        }
    }

    /// Every value, for grid search: choices, or all integers (at most 1000).
    pub fn grid_values(&self) -> Option<Vec<ParamValue>> {
        match self {
            Distribution::Categorical { choices } => Some(choices.clone()),
            Distribution::Int { low, high, step, .. } if (high - low) / step < 1000 => {
                Some((0..=(high - low) / step).map(|k| ParamValue::Int(low + k * step)).collect())
            }
            _ => None,
        }
    }

    /// Whether `v` is a value this distribution can produce.
    pub fn contains(&self, v: &ParamValue) -> bool {
        match (self, v) {
            (Distribution::Categorical { choices }, v) => choices.contains(v),
            (Distribution::Int { low, high, step, .. }, ParamValue::Int(i)) => low <= i && i <= high && (i - low) % step == 0,
            (Distribution::Uniform { low, high } | Distribution::LogUniform { low, high }, v) => {
                v.as_f64().is_some_and(|x| *low <= x && x <= *high)
            }
            _ => false,
        }
    }
}

/// One searched parameter: its distribution, the conditions under which it is used,
/// and (for grid search of a continuous one) the values to try.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub distribution: Distribution,
    /// Used only when each named parameter took one of the listed values.
    pub when: BTreeMap<String, Vec<ParamValue>>,
    /// Grid-search values for a continuous parameter.
    pub grid: Option<Vec<ParamValue>>,
}

impl ParamSpec {
    pub fn new(name: &str, distribution: Distribution) -> ParamSpec {
        ParamSpec { name: name.into(), distribution, when: BTreeMap::new(), grid: None }
    }

    /// Only when `parent` is one of `values`.
    pub fn when(mut self, parent: &str, values: &[ParamValue]) -> ParamSpec {
        self.when.insert(parent.into(), values.to_vec());
        self
    }

    /// Values for grid search: `grid`, else the distribution's own.
    pub fn grid_values(&self) -> Result<Vec<ParamValue>> {
        self.grid.clone().or_else(|| self.distribution.grid_values()).ok_or_else(|| {
            Error::Config(format!("grid search: `{}` is continuous; give it `grid = [..]` values to try", self.name))
        })
    }
}

/// An ordered search space: parents before the parameters conditioned on them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Space {
    pub params: Vec<ParamSpec>,
}

impl Space {
    /// Checks every distribution and condition and orders parents first.
    pub fn new(params: Vec<ParamSpec>) -> Result<Space> {
        for p in &params {
            p.distribution.check(&p.name)?;
            for (parent, values) in &p.when {
                let Some(ps) = params.iter().find(|q| &q.name == parent) else {
                    return Err(Error::invalid(&format!("space.{}.when", p.name), format!("names `{parent}`, which is not in the space")));
                };
                if let Some(v) = values.iter().find(|v| !ps.distribution.contains(v)) {
                    return Err(Error::invalid(&format!("space.{}.when", p.name), format!("value {v} is not a value of `{parent}`")));
                }
            }
            if let Some(g) = &p.grid {
                if let Some(v) = g.iter().find(|v| !p.distribution.contains(v)) {
                    return Err(Error::invalid(&format!("space.{}.grid", p.name), format!("grid value {v} is outside its distribution")));
                }
            }
        }
        // Topological order: repeatedly take the parameters whose parents are placed.
        let mut placed: Vec<ParamSpec> = Vec::new();
        let mut rest = params;
        while !rest.is_empty() {
            let before = rest.len();
            let (ready, wait): (Vec<_>, Vec<_>) =
                rest.into_iter().partition(|p| p.when.keys().all(|k| placed.iter().any(|q| &q.name == k)));
            placed.extend(ready);
            rest = wait;
            if rest.len() == before {
                return Err(Error::Config(format!("search space: conditions form a cycle around `{}`", rest[0].name)));
            }
        }
        Ok(Space { params: placed })
    }

    /// Whether `p` is used given the values chosen so far.
    pub fn is_active(p: &ParamSpec, chosen: &Params) -> bool {
        p.when.iter().all(|(parent, allowed)| chosen.get(parent).is_some_and(|v| allowed.contains(v)))
    }

    /// Every grid point, conditions respected (inactive parameters are left out).
    pub fn grid(&self) -> Result<Vec<Params>> {
        let mut points = vec![Params::new()];
        for p in &self.params {
            let values = p.grid_values()?;
            let mut next = Vec::new();
            for point in points {
                if Space::is_active(p, &point) {
                    for v in &values {
                        let mut q = point.clone();
                        q.insert(p.name.clone(), v.clone());
                        next.push(q);
                    }
                } else {
                    next.push(point);
                }
            }
            points = next;
        }
        Ok(points)
    }
}

/// Reads `[space]` of a study file: one table per parameter, keyed by its path.
pub fn parse_space(table: &toml::Table) -> Result<Space> {
    let mut params = Vec::new();
    for (name, value) in table {
        let Some(t) = value.as_table() else {
            return Err(Error::invalid(&format!("space.{name}"), "must be a table like { type = \"log_uniform\", low = 1e-4, high = 1e-1 }"));
        };
        let mut t = t.clone();
        let when = match t.remove("when") {
            None => BTreeMap::new(),
            Some(toml::Value::Table(w)) => w
                .into_iter()
                .map(|(k, v)| {
                    let values = match v {
                        toml::Value::Array(a) => a,
                        single => vec![single],
                    };
                    let values = values.into_iter().map(|v| v.try_into::<ParamValue>()).collect::<std::result::Result<Vec<_>, _>>();
                    values.map(|vs| (k, vs)).map_err(|e| Error::invalid(&format!("space.{name}.when"), e.message().to_string()))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(Error::invalid(&format!("space.{name}.when"), "must be a table like { \"compile.optimizer.name\" = \"sgd\" }")),
        };
        let grid = match t.remove("grid") {
            None => None,
            Some(g) => Some(g.try_into::<Vec<ParamValue>>().map_err(|e| Error::invalid(&format!("space.{name}.grid"), e.message().to_string()))?),
        };
        let distribution: Distribution = toml::Value::Table(t).try_into().map_err(|e| {
            Error::invalid(&format!("space.{name}"), format!("{} (types: uniform, log_uniform, int, categorical; plus `when` and `grid`)", e.message().trim_end()))
        })?;
        params.push(ParamSpec { name: name.clone(), distribution, when, grid });
    }
    Space::new(params)
}

/// A copy of `exp` with each parameter written at its dotted path. A path through
/// `compile.optimizer` or `compile.loss` turns a bare name into a table first, and
/// numeric path parts index arrays (`model.layers.0.units`). The result is validated.
pub fn apply(exp: &Experiment, params: &Params) -> Result<Experiment> {
    let mut root = toml::Value::try_from(exp).map_err(|e| Error::State(format!("experiment to TOML: {e}")))?;
    for (path, value) in params {
        set_path(&mut root, path, value.to_toml())?;
    }
    // Another optimizer: the old one's own hyperparameters (serialized with their
    // defaults) do not apply to it; keep the shared options and what the trial set.
    if let Some(ParamValue::Str(name)) = params.get("compile.optimizer.name") {
        if let Some(toml::Value::Table(opt)) = root.get_mut("compile").and_then(|c| c.get_mut("optimizer")) {
            if exp.compile.optimizer.name() != name {
                opt.retain(|k, _| {
                    k == "name"
                        || descent::optim::OPTION_KEYS.contains(&k)
                        || params.contains_key(&format!("compile.optimizer.{k}"))
                });
            }
        }
    }
    let text = toml::to_string(&root).map_err(|e| Error::State(format!("experiment to TOML: {e}")))?;
    Experiment::from_toml(&text).map_err(|e| Error::Config(format!("with {}: {e}", describe(params))))
}

/// `a=1, b=x` for messages and tables.
pub fn describe(params: &Params) -> String {
    params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        // `optimizer = "adam"` → `optimizer = { name = "adam" }` when a key below it is set.
        if let toml::Value::String(s) = node {
            *node = toml::Value::Table(toml::Table::from_iter([("name".to_string(), toml::Value::String(s.clone()))]));
        }
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    t.insert(part.to_string(), value);
                    return Ok(());
                }
                t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part.parse().map_err(|_| Error::Config(format!("`{path}`: `{part}` must be an index into a list")))?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| Error::Config(format!("`{path}`: index {idx} is past the {len} entries")))?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(Error::Config(format!("`{path}`: `{part}` is inside a value, not a table"))),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP: &str = r#"
        [data]
        format = "teacher"
        train = 100
        test = 50
        [model]
        layers = [{ type = "dense", units = 8, activation = "relu" }, { type = "dense", units = 10 }]
        [compile]
        optimizer = "adam"
        loss = { name = "sparse_categorical_crossentropy", from_logits = true }
    "#;

    #[test]
    fn apply_writes_paths_and_validates() {
        let exp = Experiment::from_toml(EXP).unwrap();
        let mut p = Params::new();
        p.insert("compile.optimizer.learning_rate".into(), ParamValue::Float(0.01));
        p.insert("model.layers.0.units".into(), ParamValue::Int(32));
        p.insert("fit.batch_size".into(), ParamValue::Int(64));
        let out = apply(&exp, &p).unwrap();
        let toml = out.to_toml();
        assert!(toml.contains("learning_rate = 0.01"), "{toml}");
        assert_eq!(out.fit.batch_size, 64);
        match &out.model.layers[0] {
            descent::nn::LayerConfig::Dense(d) => assert_eq!(d.units, 32),
            other => panic!("{other:?}"),
        }
        // A typo in a path is caught by the experiment's own validation.
        p.insert("compile.optimizer.learnin_rate".into(), ParamValue::Float(0.01));
        let err = apply(&exp, &p).unwrap_err().to_string();
        assert!(err.contains("learnin_rate"), "{err}");
        let mut p = Params::new();
        p.insert("model.layers.5.units".into(), ParamValue::Int(3));
        assert!(apply(&exp, &p).unwrap_err().to_string().contains("index 5 is past the 2"));
    }

    #[test]
    fn parse_orders_conditions_and_grids() {
        let table: toml::Table = toml::from_str(
            r#"
            ["compile.optimizer.momentum"]
            type = "uniform"
            low = 0.0
            high = 0.99
            grid = [0.0, 0.9]
            when = { "compile.optimizer.name" = "sgd" }
            ["compile.optimizer.name"]
            type = "categorical"
            choices = ["sgd", "adam"]
            "#,
        )
        .unwrap();
        let space = parse_space(&table).unwrap();
        assert_eq!(space.params[0].name, "compile.optimizer.name");
        let grid = space.grid().unwrap();
        // sgd × {0, 0.9} and adam alone: momentum only exists for sgd.
        assert_eq!(grid.len(), 3);
        assert!(grid.iter().all(|g| g.contains_key("compile.optimizer.momentum") == (g["compile.optimizer.name"] == ParamValue::Str("sgd".into()))));
    }

    #[test]
    fn bad_spaces_name_the_parameter() {
        let err = |s: &str| parse_space(&toml::from_str(s).unwrap()).unwrap_err().to_string();
        assert!(err("[lr]\ntype = \"log_uniform\"\nlow = 0.0\nhigh = 1.0").contains("`space.lr`: needs 0 < low"));
        assert!(err("[lr]\ntype = \"normal\"\nlow = 0.0").contains("`space.lr`"));
        assert!(err("[m]\ntype = \"uniform\"\nlow = 0.0\nhigh = 1.0\nwhen = { opt = \"sgd\" }").contains("not in the space"));
        let s = parse_space(&toml::from_str("[m]\ntype = \"uniform\"\nlow = 0.0\nhigh = 1.0").unwrap()).unwrap();
        assert!(s.grid().unwrap_err().to_string().contains("continuous"));
    }

    #[test]
    fn internal_space_round_trips() {
        let d = Distribution::Int { low: 16, high: 256, step: 16, log: false };
        assert_eq!(d.from_internal(40.0), ParamValue::Int(48));
        assert_eq!(d.from_internal(1e9), ParamValue::Int(256));
        let l = Distribution::LogUniform { low: 1e-4, high: 1e-1 };
        let v = l.from_internal(l.to_internal(&ParamValue::Float(0.003)).unwrap());
        assert!((v.as_f64().unwrap() - 0.003).abs() < 1e-12);
        let i = Distribution::Int { low: 1, high: 8, step: 1, log: true };
        let (lo, hi) = i.internal_range().unwrap();
        assert_eq!((i.from_internal(lo), i.from_internal(hi)), (ParamValue::Int(1), ParamValue::Int(8)));
    }
}
