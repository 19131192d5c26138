//! Config values that may be written as a bare name (`"adam"`) or as a table with
//! parameters (`{ name = "adam", learning_rate = 0.01 }`), in TOML or JSON alike.

use serde::de::{DeserializeOwned, Error as _};
use serde::Deserialize;

/// Deserializes `T` (an enum internally tagged by `name`) from a name or a table.
pub fn name_or_table<'de, D: serde::Deserializer<'de>, T: DeserializeOwned>(d: D, what: &str) -> Result<T, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let v = match v {
        serde_json::Value::String(s) => serde_json::json!({ "name": s }),
        serde_json::Value::Object(_) => v,
        other => return Err(D::Error::custom(format!("{what} must be a name or a table, got {other}"))),
    };
    serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{what}: {e}")))
}
