//! Exponential backoff between attempts of a failing batch or poll.

use std::time::Duration;

use weir_broker::plugins::ConnectorSettings;

/// Doubling delays from `initial` up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(settings: &ConnectorSettings) -> Self {
        Self {
            initial: Duration::from_millis(settings.backoff_initial_ms),
            max: Duration::from_millis(settings.backoff_max_ms),
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(&ConnectorSettings {
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ..ConnectorSettings::default()
        });
        let ms: Vec<u128> = (1..=6).map(|r| b.delay(r).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(500).as_millis(), 1000);
    }
}
