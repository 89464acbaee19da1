//! This process's share of the fetch budget: the token requests it made
//! in the window, each under a slot the store can count and give back.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::FETCH_BUDGET_WINDOW;

/// This process's fetches counted against the budget.
#[derive(Default)]
pub(super) struct Budget {
    /// When each fetch in the window was made, oldest first, and its slot.
    local: VecDeque<(Instant, u64)>,
    next_slot: u64,
}

impl Budget {
    /// Forgets the fetches that left the window; when those left already
    /// make `limit`, `Some` with when the oldest leaves it.
    pub(super) fn full(&mut self, now: Instant, limit: u32) -> Option<Option<Instant>> {
        if let Some(start) = now.checked_sub(FETCH_BUDGET_WINDOW) {
            while self.local.front().is_some_and(|(at, _)| *at <= start) {
                self.local.pop_front();
            }
        }
        (self.local.len() >= usize::try_from(limit).unwrap_or(usize::MAX))
            .then(|| self.local.front().and_then(|(at, _)| at.checked_add(FETCH_BUDGET_WINDOW)))
    }

    /// A new slot's id.
    pub(super) fn next_slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }

    /// Counts a fetch made at `now` under slot `id`; answers how many
    /// this process made in the window (since [`Budget::full`] last
    /// forgot the old ones), this one included.
    pub(super) fn count(&mut self, now: Instant, id: u64) -> u32 {
        self.local.push_back((now, id));
        u32::try_from(self.local.len()).unwrap_or(u32::MAX)
    }

    /// Gives slot `id` back.
    pub(super) fn refund(&mut self, id: u64) {
        self.local.retain(|(_, slot)| *slot != id);
    }
}
