//! Config values that may be written as a bare name (`"adam"`) or as a table with
//! parameters (`{ name = "adam", learning_rate = 0.01 }`), in TOML or JSON alike.

use serde::de::{DeserializeOwned, Error as _};
use serde::Deserialize;

/// Deserializes `T` (an enum internally tagged by `name`) from a name or a table.
pub fn name_or_table<'de, D: serde::Deserializer<'de>, T: DeserializeOwned>(d: D, what: &str) -> Result<T, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    refuse_null(&v, what)?;
    let v = match v {
        serde_json::Value::String(s) => serde_json::json!({ "name": s }),
        serde_json::Value::Object(_) => v,
        other => return Err(D::Error::custom(format!("{what} must be a name or a table, got {other}"))),
    };
    serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{what}: {e}")))
}

/// Refuses nulls in a value on its way through `serde_json::Value` (which the
/// name-or-table and split-table deserializers use): TOML has no null, so one here is a
/// NaN or infinity that `serde_json` could not hold, and letting it through would turn
/// `Option` keys into "absent" and use their defaults.
pub fn refuse_null<E: serde::de::Error>(v: &serde_json::Value, what: &str) -> Result<(), E> {
    fn find(v: &serde_json::Value, path: String) -> Option<String> {
        match v {
            serde_json::Value::Null => Some(path),
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| find(x, format!("{path}[{i}]"))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| find(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") })),
            _ => None,
        }
    }
    match find(v, String::new()) {
        None => Ok(()),
        Some(p) if p.is_empty() => Err(E::custom(format!("{what} is not a finite number"))),
        Some(p) => Err(E::custom(format!("{what}: `{p}` is not a finite number"))),
    }
}
