//! json-schema: validates JSON values against a JSON Schema (a documented subset).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::{Error, Event, Filter, Result};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    schema: String,
}

/// The validator: the schema and its compiled patterns.
pub struct JsonSchema {
    schema: Value,
    patterns: HashMap<String, regex::Regex>,
}

const ANNOTATIONS: [&str; 7] = [
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "examples",
    "format",
];
const KEYWORDS: [&str; 21] = [
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

impl Filter for JsonSchema {
    type Config = Config;

    fn init(c: Config) -> std::result::Result<Self, String> {
        let schema: Value =
            serde_json::from_str(&c.schema).map_err(|e| format!("schema is not JSON: {e}"))?;
        let mut patterns = HashMap::new();
        check_schema(&schema, "", &mut patterns)?;
        Ok(JsonSchema { schema, patterns })
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        let value = weir_sdk::value_json(event)?;
        self.validate(&self.schema, &value, &mut String::new())
            .map_err(Error::BadInput)?;
        Ok(true)
    }
}

/// Walks the schema once: unknown keywords are refused, patterns are compiled.
fn check_schema(
    s: &Value,
    at: &str,
    patterns: &mut HashMap<String, regex::Regex>,
) -> std::result::Result<(), String> {
    let obj = match s {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("schema at '{at}' must be an object or a boolean")),
    };
    for (k, v) in obj {
        if ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        if !KEYWORDS.contains(&k.as_str()) {
            return Err(format!(
                "unsupported keyword '{k}' at '{at}' (see the plugin's README)"
            ));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().ok_or("properties must be an object")? {
                    check_schema(sub, &format!("{at}/properties/{name}"), patterns)?;
                }
            }
            "additionalProperties" | "items" | "not" => {
                check_schema(v, &format!("{at}/{k}"), patterns)?
            }
            "allOf" | "anyOf" | "oneOf" => {
                for (i, sub) in v
                    .as_array()
                    .ok_or(format!("{k} must be an array"))?
                    .iter()
                    .enumerate()
                {
                    check_schema(sub, &format!("{at}/{k}/{i}"), patterns)?;
                }
            }
            "pattern" => {
                let p = v.as_str().ok_or("pattern must be a string")?;
                let re = regex::Regex::new(p).map_err(|e| format!("pattern at '{at}': {e}"))?;
                patterns.insert(p.to_string(), re);
            }
            _ => {}
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => type_name(v) == other,
    }
}

impl JsonSchema {
    fn validate(&self, s: &Value, v: &Value, at: &mut String) -> std::result::Result<(), String> {
        let here =
            |msg: String, at: &str| Err(format!("{}: {msg}", if at.is_empty() { "/" } else { at }));
        let obj: &Map<String, Value> = match s {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return here("no value is allowed here".into(), at),
            Value::Object(o) => o,
            _ => return Ok(()),
        };
        if let Some(t) = obj.get("type") {
            let ok = match t {
                Value::String(t) => has_type(v, t),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| has_type(v, t)),
                _ => true,
            };
            if !ok {
                return here(format!("expected type {t}, got {}", type_name(v)), at);
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            if !options.contains(v) {
                return here(
                    format!("{v} is not one of {}", Value::Array(options.clone())),
                    at,
                );
            }
        }
        if let Some(c) = obj.get("const") {
            if c != v {
                return here(format!("{v} is not {c}"), at);
            }
        }
        if let Some(n) = v.as_f64() {
            let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
            if let Some(m) = bound("minimum").filter(|m| n < *m) {
                return here(format!("{v} is less than the minimum {m}"), at);
            }
            if let Some(m) = bound("maximum").filter(|m| n > *m) {
                return here(format!("{v} is greater than the maximum {m}"), at);
            }
            if let Some(m) = bound("exclusiveMinimum").filter(|m| n <= *m) {
                return here(format!("{v} is not greater than {m}"), at);
            }
            if let Some(m) = bound("exclusiveMaximum").filter(|m| n >= *m) {
                return here(format!("{v} is not less than {m}"), at);
            }
            if let Some(m) =
                bound("multipleOf").filter(|m| *m > 0.0 && (n / m).fract().abs() > 1e-9)
            {
                return here(format!("{v} is not a multiple of {m}"), at);
            }
        }
        if let Value::String(text) = v {
            let len = text.chars().count() as u64;
            if let Some(m) = obj
                .get("minLength")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                return here(format!("string is shorter than {m} characters"), at);
            }
            if let Some(m) = obj
                .get("maxLength")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                return here(format!("string is longer than {m} characters"), at);
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                if !self.patterns.get(p).is_some_and(|re| re.is_match(text)) {
                    return here(format!("{v} does not match the pattern {p}"), at);
                }
            }
        }
        if let Value::Array(items) = v {
            let n = items.len() as u64;
            if let Some(m) = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .filter(|m| n < *m)
            {
                return here(format!("fewer than {m} items"), at);
            }
            if let Some(m) = obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .filter(|m| n > *m)
            {
                return here(format!("more than {m} items"), at);
            }
            if let Some(item_schema) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    self.validate(item_schema, item, at)?;
                    at.truncate(len);
                }
            }
        }
        if let Value::Object(fields) = v {
            if let Some(Value::Array(required)) = obj.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        return here(format!("the required property '{name}' is missing"), at);
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (name, field) in fields {
                let sub = props
                    .and_then(|p| p.get(name))
                    .or_else(|| obj.get("additionalProperties"));
                if let Some(sub) = sub {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&name.replace('~', "~0").replace('/', "~1"));
                    self.validate(sub, field, at)?;
                    at.truncate(len);
                }
            }
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for sub in all {
                self.validate(sub, v, at)?;
            }
        }
        if let Some(Value::Array(any)) = obj.get("anyOf") {
            if !any
                .iter()
                .any(|sub| self.validate(sub, v, &mut at.clone()).is_ok())
            {
                return here("matches none of anyOf".into(), at);
            }
        }
        if let Some(Value::Array(one)) = obj.get("oneOf") {
            let n = one
                .iter()
                .filter(|sub| self.validate(sub, v, &mut at.clone()).is_ok())
                .count();
            if n != 1 {
                return here(format!("matches {n} of oneOf, not exactly one"), at);
            }
        }
        if let Some(not) = obj.get("not") {
            if self.validate(not, v, &mut at.clone()).is_ok() {
                return here("matches the schema under 'not'".into(), at);
            }
        }
        Ok(())
    }
}

weir_sdk::export_filter!(JsonSchema);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::{run_filter, TestEvent};

    fn check(schema: Value, value: Value) -> std::result::Result<Vec<bool>, String> {
        run_filter::<JsonSchema>(
            json!({ "schema": schema.to_string() }),
            &[TestEvent::json(value)],
        )
    }

    #[test]
    fn accepts_and_names_violations() {
        let schema = json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "pattern": "^o-"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"price": {"maximum": 10}}}}
            },
            "additionalProperties": false
        });
        assert_eq!(
            check(
                schema.clone(),
                json!({"id": "o-1", "items": [{"price": 3}]})
            )
            .unwrap(),
            [true]
        );
        let e = check(
            schema.clone(),
            json!({"id": "o-1", "items": [{"price": 3}, {"price": 12.5}]}),
        )
        .unwrap_err();
        assert!(e.contains("/items/1/price") && e.contains("maximum"), "{e}");
        let e = check(schema.clone(), json!({"items": []})).unwrap_err();
        assert!(e.contains("required property 'id'"), "{e}");
        let e = check(schema.clone(), json!({"id": "x"})).unwrap_err();
        assert!(e.contains("pattern"), "{e}");
        let e = check(schema, json!({"id": "o-2", "extra": 1})).unwrap_err();
        assert!(e.contains("/extra"), "{e}");
        assert!(check(json!({"$ref": "#/x"}), json!(1))
            .unwrap_err()
            .contains("unsupported keyword"));
    }
}
