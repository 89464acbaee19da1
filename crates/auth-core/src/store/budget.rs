//! The fetch budget's rule, for backends that keep the log of counted
//! token requests as one value.

use std::time::Duration;

/// The answer to [`StoreOp::SpendBudget`](super::StoreOp::SpendBudget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetAnswer {
    /// The request was counted: fetch.
    Granted {
        /// The requests counted in the window, this one included.
        spent: u32,
    },
    /// The budget is spent: the next request fits at this time (Unix
    /// milliseconds), when the oldest counted one leaves the window.
    Spent {
        /// When the next request is allowed.
        next_at_unix_ms: u64,
    },
}

/// The requests counted against a fetch budget, oldest first: the rule of
/// [`StoreOp::SpendBudget`](super::StoreOp::SpendBudget) for backends that keep the log as one value
/// (in memory, in a file). Encoded as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetLog {
    entries: Vec<(u64, String)>,
}

impl BudgetLog {
    /// The most entries a log keeps: the largest budget.
    pub const MAX_ENTRIES: usize = crate::config::MAX_FETCHES_PER_DAY as usize;

    /// Carries out [`StoreOp::SpendBudget`](super::StoreOp::SpendBudget).
    pub fn spend(&mut self, limit: u32, window: Duration, at_unix_ms: u64, slot: &str) -> BudgetAnswer {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let start = at_unix_ms.saturating_sub(window_ms);
        self.entries.retain(|(at, _)| *at > start);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(Self::MAX_ENTRIES);
        if self.entries.len() < limit {
            self.entries.push((at_unix_ms, slot.to_owned()));
            self.entries.sort_by_key(|(at, _)| *at);
            return BudgetAnswer::Granted { spent: u32::try_from(self.entries.len()).unwrap_or(u32::MAX) };
        }
        let oldest = self.entries.first().map_or(at_unix_ms, |(at, _)| *at);
        BudgetAnswer::Spent { next_at_unix_ms: oldest.saturating_add(window_ms) }
    }

    /// Carries out [`StoreOp::RefundBudget`](super::StoreOp::RefundBudget).
    pub fn refund(&mut self, slot: &str) {
        self.entries.retain(|(_, name)| name != slot);
    }

    /// When the newest entry leaves a `window`, in Unix milliseconds: the
    /// log may be deleted then.
    pub fn expires_at_unix_ms(&self, window: Duration) -> Option<u64> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.entries.last().map(|(at, _)| at.saturating_add(window_ms))
    }

    /// The log as JSON.
    pub fn encode(&self) -> String {
        serde_json::json!({ "version": 1, "entries": self.entries }).to_string()
    }

    /// Reads a log; anything unreadable is an empty log (the budget starts
    /// over rather than blocking every fetch).
    pub fn decode(text: &str) -> Self {
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let entries = value["entries"].as_array().map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .filter_map(|entry| Some((entry[0].as_u64()?, entry[1].as_str()?.to_owned())))
                .take(Self::MAX_ENTRIES)
                .collect()
        });
        let mut log = Self { entries };
        log.entries.sort_by_key(|(at, _)| *at);
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_log_counts_a_rolling_window_and_gives_back() {
        let day = Duration::from_secs(24 * 3600);
        let mut log = BudgetLog::default();
        let t0 = 1_800_000_000_000;
        assert_eq!(log.spend(2, day, t0, "a"), BudgetAnswer::Granted { spent: 1 });
        assert_eq!(log.spend(2, day, t0 + 1000, "b"), BudgetAnswer::Granted { spent: 2 });
        assert_eq!(log.spend(2, day, t0 + 2000, "c"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 86_400_000 });
        log.refund("a");
        assert_eq!(log.spend(2, day, t0 + 3000, "d"), BudgetAnswer::Granted { spent: 2 }, "a was given back");
        assert_eq!(log.spend(2, day, t0 + 4000, "e"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 1000 + 86_400_000 });
        assert_eq!(
            log.spend(2, day, t0 + 1000 + 86_400_000, "f"),
            BudgetAnswer::Granted { spent: 2 },
            "b left the window"
        );
        let round = BudgetLog::decode(&log.encode());
        assert_eq!(round, log);
        assert_eq!(round.expires_at_unix_ms(day), Some(t0 + 1000 + 2 * 86_400_000));
        for junk in ["", "{", r#"{"entries":[[1,"a"],["x",2],null]}"#] {
            assert!(BudgetLog::decode(junk).entries.len() <= 1);
        }
    }
}
