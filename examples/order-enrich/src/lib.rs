//! A stream-table join: the latest value of each customer (from the `customers`
//! table topic) is kept in state; each order is emitted with its customer's value, or
//! `null` when the customer is not known (yet).
//!
//! Both inputs are keyed by customer id and co-partitioned, so an order's partition
//! state holds its customer. Within a partition, the broker alternates between the
//! inputs, so an order sees the customers published before it was read.

use serde::Deserialize;
use serde_json::value::RawValue;
use weir_sdk::processor::{state, Context, Emit, Input, Processor};
use weir_sdk::{Error, Result};

/// The processor.
pub struct OrderEnrich {
    customers: String,
    output: String,
}

/// `[config]`.
#[derive(Deserialize)]
pub struct Config {
    /// The customers table topic.
    customers: String,
    /// Where enriched orders go.
    output: String,
}

fn customer_key(id: &[u8]) -> Vec<u8> {
    [b"customer/", id].concat()
}

impl Processor for OrderEnrich {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(OrderEnrich {
            customers: config.customers,
            output: config.output,
        })
    }

    fn process(&mut self, input: &Input<'_>, ctx: &mut Context) -> Result<()> {
        let event = input.event;
        let id = event
            .key
            .ok_or_else(|| Error::BadInput("keyed by customer id: the event has no key".into()))?;
        if ctx.info().topic == self.customers {
            match event.value.filter(|v| !v.is_empty()) {
                Some(customer) => state::put(&customer_key(id), customer),
                None => state::delete(&customer_key(id)),
            }
            return Ok(());
        }
        let order: &RawValue = serde_json::from_slice(event.value.unwrap_or_default())
            .map_err(|e| Error::BadInput(format!("the order is not JSON: {e}")))?;
        let customer = state::get(&customer_key(id));
        let customer = customer
            .as_deref()
            .and_then(|c| std::str::from_utf8(c).ok())
            .unwrap_or("null");
        let value = format!("{{\"order\":{},\"customer\":{customer}}}", order.get());
        ctx.push(Emit::json(&self.output, value).key(id));
        Ok(())
    }
}

weir_sdk::export_processor!(OrderEnrich);

#[cfg(test)]
mod tests {
    use weir_sdk::processor::testing;
    use weir_sdk::testing::TestEvent;

    use super::*;

    #[test]
    fn orders_carry_their_customer() {
        let config = serde_json::json!({"customers": "customers", "output": "out"});
        let mut p: OrderEnrich = testing::processor(config).unwrap();
        let customer = TestEvent::json(serde_json::json!({"name": "Ada"})).key("c1");
        testing::process(&mut p, "customers", &[(customer, 0, vec![])]).unwrap();
        let order = |c: &str| {
            (
                TestEvent::json(serde_json::json!({"total": 5})).key(c),
                0,
                vec![],
            )
        };
        let out = testing::process(&mut p, "orders", &[order("c1"), order("c2")]).unwrap();
        let v = |i: usize| String::from_utf8(out[i].value.clone().unwrap()).unwrap();
        assert_eq!(v(0), r#"{"order":{"total":5},"customer":{"name":"Ada"}}"#);
        assert_eq!(v(1), r#"{"order":{"total":5},"customer":null}"#);
    }
}
