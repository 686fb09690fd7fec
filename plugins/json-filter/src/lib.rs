//! json-filter: keeps events whose JSON value matches one condition at a JSON pointer.

use serde::Deserialize;
use serde_json::Value;
use weir_sdk::{Error, Event, Filter, Result};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    path: String,
    equals: Option<Value>,
    not_equals: Option<Value>,
    exists: Option<bool>,
    matches: Option<String>,
    gt: Option<f64>,
    lt: Option<f64>,
}

enum Condition {
    Equals(Value),
    NotEquals(Value),
    Exists(bool),
    Matches(regex::Regex),
    Gt(f64),
    Lt(f64),
}

/// The filter.
pub struct JsonFilter {
    path: String,
    condition: Condition,
}

impl Filter for JsonFilter {
    type Config = Config;

    fn init(c: Config) -> std::result::Result<Self, String> {
        if !(c.path.is_empty() || c.path.starts_with('/')) {
            return Err(format!("path '{}' is not a JSON pointer (it must start with '/')", c.path));
        }
        let mut conditions = Vec::new();
        if let Some(v) = c.equals {
            conditions.push(Condition::Equals(v));
        }
        if let Some(v) = c.not_equals {
            conditions.push(Condition::NotEquals(v));
        }
        if let Some(v) = c.exists {
            conditions.push(Condition::Exists(v));
        }
        if let Some(p) = c.matches {
            let re = regex::Regex::new(&p).map_err(|e| format!("matches: {e}"))?;
            conditions.push(Condition::Matches(re));
        }
        if let Some(v) = c.gt {
            conditions.push(Condition::Gt(v));
        }
        if let Some(v) = c.lt {
            conditions.push(Condition::Lt(v));
        }
        if conditions.len() != 1 {
            return Err("give exactly one of equals, not_equals, exists, matches, gt, lt".into());
        }
        Ok(JsonFilter {
            path: c.path,
            condition: conditions.remove(0),
        })
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        let value: Value = match event.value {
            Some(v) => serde_json::from_slice(v)
                .map_err(|e| Error::BadInput(format!("value is not JSON: {e}")))?,
            None => Value::Null,
        };
        let at = value.pointer(&self.path);
        Ok(match &self.condition {
            Condition::Equals(v) => at == Some(v),
            Condition::NotEquals(v) => at != Some(v),
            Condition::Exists(want) => at.is_some() == *want,
            Condition::Matches(re) => at.and_then(Value::as_str).is_some_and(|s| re.is_match(s)),
            Condition::Gt(n) => at.and_then(Value::as_f64).is_some_and(|x| x > *n),
            Condition::Lt(n) => at.and_then(Value::as_f64).is_some_and(|x| x < *n),
        })
    }
}

weir_sdk::export_filter!(JsonFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::{TestEvent, run_filter};

    #[test]
    fn conditions() {
        let events = [
            TestEvent::json(json!({"status": "paid", "n": 5})),
            TestEvent::json(json!({"status": "open", "n": 50})),
            TestEvent::json(json!({"n": 1})),
        ];
        let run = |c| run_filter::<JsonFilter>(c, &events).unwrap();
        assert_eq!(run(json!({"path": "/status", "equals": "paid"})), [true, false, false]);
        assert_eq!(run(json!({"path": "/status", "not_equals": "paid"})), [false, true, true]);
        assert_eq!(run(json!({"path": "/status", "exists": false})), [false, false, true]);
        assert_eq!(run(json!({"path": "/status", "matches": "^o"})), [false, true, false]);
        assert_eq!(run(json!({"path": "/n", "gt": 4})), [true, true, false]);
        assert_eq!(run(json!({"path": "/n", "lt": 4})), [false, false, true]);
        assert!(run_filter::<JsonFilter>(json!({"path": "/n"}), &events).is_err());
        assert!(run_filter::<JsonFilter>(json!({"path": "n", "gt": 1}), &events).is_err());
    }
}
