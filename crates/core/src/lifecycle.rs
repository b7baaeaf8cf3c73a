//! The order lifecycle, defined once: the states, why an order moves, and the one table of
//! allowed transitions (state × cause → state). The journal refuses any other transition, the
//! SQL state lists are derived from here, and ARCHITECTURE.md's diagram is checked against the
//! table by a test.

/// Lifecycle of an order (ARCHITECTURE.md, "Order lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Validated and journaled; waiting its turn at the POS. No byte sent yet.
    Accepted,
    /// SALE/REFUND may have been written to the POS.
    Sent,
    /// The POS reports the patient confirming or entering a password.
    Paying,
    /// CANCEL may have been written to the POS.
    Cancelling,
    /// The outcome is unknown (link lost, bridge restarted, the POS contradicted itself): only a
    /// query may resolve it.
    Unknown,
    Success,
    Refunded,
    Failed,
    Cancelled,
    Reversed,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Accepted,
        State::Sent,
        State::Paying,
        State::Cancelling,
        State::Unknown,
        State::Success,
        State::Refunded,
        State::Failed,
        State::Cancelled,
        State::Reversed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Accepted => "ACCEPTED",
            State::Sent => "SENT",
            State::Paying => "PAYING",
            State::Cancelling => "CANCELLING",
            State::Unknown => "UNKNOWN",
            State::Success => "SUCCESS",
            State::Refunded => "REFUNDED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
            State::Reversed => "REVERSED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(self, State::Success | State::Refunded | State::Failed | State::Cancelled | State::Reversed)
    }
    /// The status the HIS is told for an order in this state.
    pub fn his_status(self) -> crate::his::Status {
        use crate::his::Status;
        match self {
            State::Accepted | State::Sent | State::Paying | State::Cancelling => Status::Processing,
            State::Unknown => Status::Unknown,
            State::Success => Status::Success,
            State::Refunded => Status::Refunded,
            State::Failed => Status::Failed,
            State::Cancelled => Status::Cancelled,
            State::Reversed => Status::Reversed,
        }
    }
    /// The POS may hold a transaction for this order whose outcome the bridge does not know.
    pub fn is_open(self) -> bool {
        matches!(self, State::Sent | State::Paying | State::Cancelling | State::Unknown)
    }
    /// A definite failure: nothing was charged, and the same instruction again may try anew.
    pub fn allows_retry(self) -> bool {
        matches!(self, State::Failed | State::Cancelled)
    }
}

/// A SQL list (`'A','B'`) of the states that satisfy `pred`, for the journal's queries.
pub fn sql_list(pred: fn(State) -> bool) -> String {
    State::ALL.iter().filter(|s| pred(**s)).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sale,
    Refund,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "SALE",
            Kind::Refund => "REFUND",
        }
    }
}

/// Who asked for a cancel: journaled with the cancel, so the HIS is told the right reason even
/// after a lost link or a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    /// A `cancel` instruction from the HIS.
    His,
    /// The cashier, from the dashboard.
    Cashier,
    /// The bridge, because the patient did not pay within the deadline.
    Timeout,
    /// The POS itself (the cashier pressed cancel on the POS, or the POS gave up).
    Pos,
}

impl CancelledBy {
    pub const ALL: [CancelledBy; 4] = [CancelledBy::His, CancelledBy::Cashier, CancelledBy::Timeout, CancelledBy::Pos];
    pub fn as_str(self) -> &'static str {
        match self {
            CancelledBy::His => "HIS",
            CancelledBy::Cashier => "CASHIER",
            CancelledBy::Timeout => "TIMEOUT",
            CancelledBy::Pos => "POS",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why an order moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The same instruction came again after a definite failure: a new attempt may start.
    Retry,
    /// Its turn at the POS: a new attempt with a new reference, durable before the first byte.
    Send,
    /// The session refused the command before writing a byte: back in the queue.
    Requeue,
    /// The POS reports the patient confirming (`USER_PAYING`), or a query found it running.
    UserPaying,
    /// Cancelled (HIS, cashier) while still queued: nothing was sent.
    CancelQueued,
    /// A cancel was asked for (HIS, cashier, deadline) for a transaction the POS may hold.
    CancelAsked,
    /// The link went away, a command was not acknowledged, or no answer came in time.
    Lost,
    /// The POS said something that contradicts what it said before, or what was asked.
    Contradiction,
    /// The POS reports a final outcome.
    PosFinal,
    /// The POS refused the command outright (`BUSY`, `ERROR`): nothing started.
    PosRefused,
    /// Queued while the POS could not be reached (not connected, another device ID) for
    /// `[timeouts] pos_unavailable_secs`: nothing was sent, the order fails definitely.
    PosUnavailable,
}

use Cause as C;
use State as S;

/// Every allowed transition: (from, cause, to). Nothing else is ever journaled.
pub const TRANSITIONS: &[(State, Cause, State)] = &[
    (S::Failed, C::Retry, S::Accepted),
    (S::Cancelled, C::Retry, S::Accepted),
    (S::Accepted, C::Send, S::Sent),
    (S::Sent, C::Requeue, S::Accepted),
    (S::Accepted, C::CancelQueued, S::Cancelled),
    (S::Accepted, C::PosUnavailable, S::Failed),
    (S::Sent, C::UserPaying, S::Paying),
    (S::Unknown, C::UserPaying, S::Paying),
    (S::Sent, C::CancelAsked, S::Cancelling),
    (S::Paying, C::CancelAsked, S::Cancelling),
    (S::Unknown, C::CancelAsked, S::Cancelling),
    (S::Sent, C::Lost, S::Unknown),
    (S::Paying, C::Lost, S::Unknown),
    (S::Sent, C::Contradiction, S::Unknown),
    (S::Paying, C::Contradiction, S::Unknown),
    (S::Cancelling, C::Contradiction, S::Unknown),
    (S::Sent, C::PosRefused, S::Failed),
    (S::Sent, C::PosFinal, S::Success),
    (S::Sent, C::PosFinal, S::Refunded),
    (S::Sent, C::PosFinal, S::Failed),
    (S::Sent, C::PosFinal, S::Cancelled),
    (S::Sent, C::PosFinal, S::Reversed),
    (S::Paying, C::PosFinal, S::Success),
    (S::Paying, C::PosFinal, S::Failed),
    (S::Paying, C::PosFinal, S::Cancelled),
    (S::Paying, C::PosFinal, S::Reversed),
    (S::Cancelling, C::PosFinal, S::Success),
    (S::Cancelling, C::PosFinal, S::Failed),
    (S::Cancelling, C::PosFinal, S::Cancelled),
    (S::Cancelling, C::PosFinal, S::Reversed),
    (S::Unknown, C::PosFinal, S::Success),
    (S::Unknown, C::PosFinal, S::Refunded),
    (S::Unknown, C::PosFinal, S::Failed),
    (S::Unknown, C::PosFinal, S::Cancelled),
    (S::Unknown, C::PosFinal, S::Reversed),
];

/// The state `from` moves to for `cause` when `to` is what the caller wants, if the table
/// allows it.
pub fn allowed(from: State, cause: Cause, to: State) -> bool {
    TRANSITIONS.contains(&(from, cause, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_state_is_left_only_by_a_retry_after_a_definite_failure() {
        for (from, cause, to) in TRANSITIONS {
            if from.is_final() {
                assert!(from.allows_retry() && *cause == Cause::Retry && *to == State::Accepted, "{from:?} -> {to:?}");
            }
        }
        // A success, a refund done, a reversal never change.
        for s in [State::Success, State::Refunded, State::Reversed] {
            assert!(!TRANSITIONS.iter().any(|t| t.0 == s), "{s:?} is left");
        }
    }

    #[test]
    fn only_a_send_reaches_sent_and_only_from_the_queue() {
        for (from, cause, to) in TRANSITIONS {
            if *to == State::Sent {
                assert_eq!((*from, *cause), (State::Accepted, Cause::Send));
            }
        }
    }

    #[test]
    fn a_refund_done_is_only_ever_reported_by_the_pos() {
        for (_, cause, to) in TRANSITIONS {
            if to.is_final() && *to != State::Cancelled && *to != State::Failed {
                assert_eq!(*cause, Cause::PosFinal);
            }
        }
    }

    #[test]
    fn every_state_is_reachable_and_every_open_state_can_end() {
        for s in State::ALL {
            if s != State::Accepted {
                assert!(TRANSITIONS.iter().any(|t| t.2 == s), "{s:?} unreachable");
            }
            if s.is_open() {
                assert!(TRANSITIONS.iter().any(|t| t.0 == s && t.2.is_final()), "{s:?} cannot end");
            }
        }
    }

    /// ARCHITECTURE.md's transition list and this table say the same.
    #[test]
    fn architecture_md_lists_the_table() {
        let doc = include_str!("../../../ARCHITECTURE.md");
        let start = doc.find("<!-- transitions -->").expect("ARCHITECTURE.md has a transitions list");
        let end = doc[start..].find("<!-- /transitions -->").expect("end marker") + start;
        let mut listed: Vec<(String, String, String)> = doc[start..end]
            .lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix('|')?;
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells.len() >= 3 && State::parse(cells[0]).is_some())
                    .then(|| (cells[0].to_string(), cells[1].to_string(), cells[2].to_string()))
            })
            .flat_map(|(from, cause, tos)| {
                tos.split(',').map(|t| (from.clone(), cause.clone(), t.trim().to_string())).collect::<Vec<_>>()
            })
            .collect();
        let mut table: Vec<(String, String, String)> = TRANSITIONS
            .iter()
            .map(|(f, c, t)| (f.as_str().to_string(), format!("{c:?}"), t.as_str().to_string()))
            .collect();
        listed.sort();
        table.sort();
        assert_eq!(listed, table, "ARCHITECTURE.md's transition list differs from lifecycle::TRANSITIONS");
    }
}
