//! The engine's deadlines in one table (quinn-proto's `TimerTable` is the model): each kind of
//! deadline has one slot, `next` is the earliest, and the driver sleeps until then.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Pruning message ids, retrying results not yet written, the journal's seal.
    Housekeeping,
    /// The active transaction's deadline (scan, password, cancel, query).
    Deadline,
    /// The next QUERY while waiting for the active transaction's RESULT.
    Poll,
    /// The next open order due for a query (the resolver).
    Resolver,
    /// TOTALS unanswered.
    Totals,
    /// INFO unanswered.
    Info,
    /// The next file effect to try again.
    Retry,
    /// The next attempt to write the journal after it failed.
    JournalProbe,
    /// The first queued order to fail because the POS cannot be reached.
    Unavailable,
    /// Lazy journal commits to make durable (no durable commit came after them).
    Sync,
}

const N: usize = 10;

impl Timer {
    pub const ALL: [Timer; N] = [
        Timer::Housekeeping,
        Timer::Deadline,
        Timer::Poll,
        Timer::Resolver,
        Timer::Totals,
        Timer::Info,
        Timer::Retry,
        Timer::JournalProbe,
        Timer::Unavailable,
        Timer::Sync,
    ];
}

#[derive(Debug, Default, Clone)]
pub struct TimerTable {
    slots: [Option<Instant>; N],
}

impl TimerTable {
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.slots[t as usize] = Some(at);
    }
    pub fn stop(&mut self, t: Timer) {
        self.slots[t as usize] = None;
    }
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.slots[t as usize]
    }
    /// Whether `t` is set and due at `now`.
    pub fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }
    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_wins_and_stopped_slots_do_not_count() {
        let t = Instant::now();
        let mut tt = TimerTable::default();
        assert_eq!(tt.next(), None);
        tt.set(Timer::Housekeeping, t + Duration::from_secs(5));
        tt.set(Timer::Deadline, t + Duration::from_secs(1));
        assert_eq!(tt.next(), Some(t + Duration::from_secs(1)));
        assert!(tt.expired(Timer::Deadline, t + Duration::from_secs(1)));
        assert!(!tt.expired(Timer::Housekeeping, t + Duration::from_secs(1)));
        tt.stop(Timer::Deadline);
        assert_eq!(tt.next(), Some(t + Duration::from_secs(5)));
    }
}
