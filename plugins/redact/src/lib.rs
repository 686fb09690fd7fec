//! redact: masks or drops fields of JSON values.

use serde::Deserialize;
use serde_json::Value;
use weir_sdk::{Event, Output, Result, Transform};

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    fields: Vec<String>,
    #[serde(default)]
    mode: Mode,
}

/// What happens to a redacted field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace with `"***"`.
    #[default]
    Mask,
    /// Remove.
    Drop,
}

/// The transform.
pub struct Redact {
    /// Each pointer split into its parent path and last token.
    fields: Vec<(String, String)>,
    mode: Mode,
}

impl Transform for Redact {
    type Config = Config;

    fn init(c: Config) -> std::result::Result<Self, String> {
        if c.fields.is_empty() {
            return Err("fields must list at least one JSON pointer".into());
        }
        let mut fields = Vec::new();
        for f in c.fields {
            let Some(cut) = f.rfind('/') else {
                return Err(format!("'{f}' is not a JSON pointer (it must start with '/')"));
            };
            let last = f[cut + 1..].replace("~1", "/").replace("~0", "~");
            fields.push((f[..cut].to_string(), last));
        }
        Ok(Redact { fields, mode: c.mode })
    }

    fn transform(&self, event: &Event<'_>, out: &mut Output) -> Result<()> {
        let mut value = weir_sdk::value_json(event)?;
        let mut changed = false;
        for (parent, last) in &self.fields {
            let target = if parent.is_empty() { Some(&mut value) } else { value.pointer_mut(parent) };
            match target {
                Some(Value::Object(map)) if map.contains_key(last) => {
                    changed = true;
                    match self.mode {
                        Mode::Mask => {
                            map.insert(last.clone(), Value::String("***".into()));
                        }
                        Mode::Drop => {
                            map.remove(last);
                        }
                    }
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < items.len() {
                            changed = true;
                            match self.mode {
                                Mode::Mask => items[i] = Value::String("***".into()),
                                Mode::Drop => {
                                    items.remove(i);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if changed {
            out.emit_json(event, &value);
        } else {
            out.keep(event);
        }
        Ok(())
    }
}

weir_sdk::export_transform!(Redact);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::{TestEvent, run_transform};

    #[test]
    fn masks_and_drops() {
        let events = [TestEvent::json(json!({"card": {"number": "4111", "exp": "12/30"}, "email": "a@b", "n": 1}))];
        let out = run_transform::<Redact>(json!({"fields": ["/card/number", "/email", "/missing"]}), &events).unwrap();
        let v: serde_json::Value = serde_json::from_slice(out[0][0].value.as_deref().unwrap()).unwrap();
        assert_eq!(v, json!({"card": {"number": "***", "exp": "12/30"}, "email": "***", "n": 1}));
        let out = run_transform::<Redact>(json!({"fields": ["/card/number"], "mode": "drop"}), &events).unwrap();
        let v: serde_json::Value = serde_json::from_slice(out[0][0].value.as_deref().unwrap()).unwrap();
        assert_eq!(v["card"], json!({"exp": "12/30"}));
        assert!(run_transform::<Redact>(json!({"fields": []}), &events).is_err());
    }
}
