//! A processor that copies each event's value to `output`, and on the value `trap`
//! (bare or as a JSON string)
//! panics (a trap), on `fail` returns `Error::Failed`: failures that count against
//! the plugin, unlike bad input.

use weir_sdk::processor::{Context, Emit, Input, Processor};
use weir_sdk::{Error, Result};

/// The processor.
pub struct Hostile {
    output: String,
}

/// `[config]`.
#[derive(serde::Deserialize)]
pub struct Config {
    output: String,
}

impl Processor for Hostile {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Hostile {
            output: config.output,
        })
    }

    fn process(&mut self, input: &Input<'_>, ctx: &mut Context) -> Result<()> {
        let value = input.event.value.unwrap_or_default();
        // A JSON string (`"trap"`) asks the same as the bare text.
        let asked = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        match asked {
            b"trap" => panic!("asked to trap"),
            b"fail" => Err(Error::Failed("asked to fail".into())),
            _ => {
                let mut copy = Emit::bytes(&self.output, value.to_vec());
                copy.json = input.event.value_is_json();
                ctx.push(copy);
                Ok(())
            }
        }
    }
}

weir_sdk::export_processor!(Hostile);
