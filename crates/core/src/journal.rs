//! The order journal: one SQLite row per order, every state change recorded with its time.
//!
//! WAL with `synchronous = FULL`: a state change is on disk when its call returns, and the
//! engine sends nothing to the POS before that (ARCHITECTURE.md, invariant 1).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal holds an unknown state {0:?}")]
    BadState(String),
}

pub type Result<T> = std::result::Result<T, JournalError>;

/// Lifecycle of an order (ARCHITECTURE.md, "Order lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Validated and journaled; waiting its turn at the POS. No byte sent yet.
    Accepted,
    /// SALE/REFUND may have been written to the POS.
    Sent,
    /// The POS reports the patient confirming or entering a password.
    Paying,
    /// CANCEL may have been written to the POS.
    Cancelling,
    /// The outcome is unknown (link lost, bridge restarted): only a query may resolve it.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One order as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub key: String,
    pub order_no: String,
    pub refund_no: Option<String>,
    pub terminal_id: String,
    pub kind: Kind,
    /// Signed fen: positive collects, negative refunds.
    pub amount_fen: i64,
    pub description: Option<String>,
    pub operator: Option<String>,
    pub state: State,
    pub attempt: i64,
    pub pos_ref: Option<String>,
    /// For a refund: the POS reference of the collection it refunds.
    pub orig_pos_ref: Option<String>,
    pub device_id: Option<String>,
    pub pay_order_no: Option<String>,
    pub channel: Option<String>,
    pub pos_code: Option<String>,
    pub pos_message: Option<String>,
    pub error_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub finished_at: Option<String>,
    pub result_written_at: Option<String>,
}

/// What the engine journals for a new order.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub key: &'a str,
    pub order_no: &'a str,
    pub refund_no: Option<&'a str>,
    pub terminal_id: &'a str,
    pub amount_fen: i64,
    pub description: Option<&'a str>,
    pub operator: Option<&'a str>,
    pub orig_pos_ref: Option<&'a str>,
    pub source: &'a str,
}

/// Fields a transition may set (None leaves the column as it is).
#[derive(Debug, Clone, Default)]
pub struct Update<'a> {
    pub pay_order_no: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub pos_code: Option<&'a str>,
    pub pos_message: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub fn now_str() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    order_no TEXT NOT NULL,
    refund_no TEXT,
    terminal_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('SALE','REFUND')),
    amount_fen INTEGER NOT NULL,
    description TEXT,
    operator TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    pos_ref TEXT,
    orig_pos_ref TEXT,
    device_id TEXT,
    pay_order_no TEXT,
    channel TEXT,
    pos_code TEXT,
    pos_message TEXT,
    error_code TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    finished_at TEXT,
    result_written_at TEXT
);
CREATE INDEX IF NOT EXISTS orders_state ON orders(state);
CREATE INDEX IF NOT EXISTS orders_order_no ON orders(order_no);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_order ON events(order_id);
CREATE TABLE IF NOT EXISTS replies (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    reply_to TEXT NOT NULL,
    work_file TEXT,
    PRIMARY KEY (order_id, reply_to)
);
CREATE TABLE IF NOT EXISTS seen_messages (
    nonce TEXT PRIMARY KEY,
    at_unix INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pos_totals (
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    sales INTEGER NOT NULL,
    sales_fen INTEGER NOT NULL,
    refunds INTEGER NOT NULL,
    refunds_fen INTEGER NOT NULL,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (date, channel)
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    order_no TEXT,
    error_code TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

const COLUMNS: &str = "id, key, order_no, refund_no, terminal_id, kind, amount_fen, description, operator, state, \
     attempt, pos_ref, orig_pos_ref, device_id, pay_order_no, channel, pos_code, pos_message, error_code, \
     created_at, updated_at, sent_at, finished_at, result_written_at";

fn row_to_order(r: &Row<'_>) -> rusqlite::Result<(OrderRow, String)> {
    let state: String = r.get(9)?;
    let kind: String = r.get(5)?;
    Ok((
        OrderRow {
            id: r.get(0)?,
            key: r.get(1)?,
            order_no: r.get(2)?,
            refund_no: r.get(3)?,
            terminal_id: r.get(4)?,
            kind: if kind == "REFUND" { Kind::Refund } else { Kind::Sale },
            amount_fen: r.get(6)?,
            description: r.get(7)?,
            operator: r.get(8)?,
            state: State::Accepted,
            attempt: r.get(10)?,
            pos_ref: r.get(11)?,
            orig_pos_ref: r.get(12)?,
            device_id: r.get(13)?,
            pay_order_no: r.get(14)?,
            channel: r.get(15)?,
            pos_code: r.get(16)?,
            pos_message: r.get(17)?,
            error_code: r.get(18)?,
            created_at: r.get(19)?,
            updated_at: r.get(20)?,
            sent_at: r.get(21)?,
            finished_at: r.get(22)?,
            result_written_at: r.get(23)?,
        },
        state,
    ))
}

fn finish(pair: (OrderRow, String)) -> Result<OrderRow> {
    let (mut row, state) = pair;
    row.state = State::parse(&state).ok_or(JournalError::BadState(state))?;
    Ok(row)
}

pub struct Journal {
    conn: Connection,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    fn query_one(&self, where_sql: &str, p: impl rusqlite::Params) -> Result<Option<OrderRow>> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE {where_sql}");
        self.conn.query_row(&sql, p, row_to_order).optional()?.map(finish).transpose()
    }

    fn query_many(&self, where_sql: &str, p: impl rusqlite::Params) -> Result<Vec<OrderRow>> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE {where_sql}");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(p, row_to_order)?;
        rows.map(|r| finish(r?)).collect()
    }

    pub fn get(&self, id: i64) -> Result<Option<OrderRow>> {
        self.query_one("id = ?1", [id])
    }

    pub fn get_by_key(&self, key: &str) -> Result<Option<OrderRow>> {
        self.query_one("key = ?1", [key])
    }

    /// Journals a validated order in state ACCEPTED; durable when this returns.
    pub fn insert(&mut self, o: &NewOrder<'_>) -> Result<OrderRow> {
        let now = now_str();
        let kind = if o.amount_fen < 0 { Kind::Refund } else { Kind::Sale };
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO orders (key, order_no, refund_no, terminal_id, kind, amount_fen, description, operator, source, \
             state, orig_pos_ref, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'ACCEPTED',?10,?11,?11)",
            params![
                o.key,
                o.order_no,
                o.refund_no,
                o.terminal_id,
                kind.as_str(),
                o.amount_fen,
                o.description,
                o.operator,
                o.source,
                o.orig_pos_ref,
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, 'ACCEPTED', ?3)",
            params![id, now, o.source],
        )?;
        tx.commit()?;
        Ok(self.get(id)?.expect("just inserted"))
    }

    /// Starts a new POS attempt: the next attempt number, its POS reference, state SENT.
    /// Durable before the caller writes any byte to the POS.
    pub fn start_attempt(&mut self, id: i64, device_id: &str) -> Result<OrderRow> {
        let now = now_str();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE orders SET attempt = attempt + 1, pos_ref = key || '.' || (attempt + 1), state = 'SENT', \
             device_id = ?2, sent_at = ?3, updated_at = ?3, pay_order_no = NULL, channel = NULL, pos_code = NULL, \
             pos_message = NULL, error_code = NULL, finished_at = NULL, result_written_at = NULL WHERE id = ?1",
            params![id, device_id, now],
        )?;
        tx.execute(
            "INSERT INTO events (order_id, at, state, detail) SELECT id, ?2, 'SENT', 'attempt ' || attempt || ' ref ' || pos_ref FROM orders WHERE id = ?1",
            params![id, now],
        )?;
        tx.commit()?;
        Ok(self.get(id)?.expect("exists"))
    }

    /// Records a state change and the fields that came with it.
    pub fn transition(&mut self, id: i64, state: State, u: &Update<'_>) -> Result<OrderRow> {
        let now = now_str();
        let finished = state.is_final().then_some(now.as_str());
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE orders SET state = ?2, updated_at = ?3, finished_at = COALESCE(?4, finished_at), \
             pay_order_no = COALESCE(?5, pay_order_no), channel = COALESCE(?6, channel), pos_code = COALESCE(?7, pos_code), \
             pos_message = COALESCE(?8, pos_message), error_code = COALESCE(?9, error_code) WHERE id = ?1",
            params![id, state.as_str(), now, finished, u.pay_order_no, u.channel, u.pos_code, u.pos_message, u.error_code],
        )?;
        tx.execute(
            "INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, now, state.as_str(), u.detail],
        )?;
        tx.commit()?;
        Ok(self.get(id)?.expect("exists"))
    }

    /// Puts an order back in the queue when its command provably never left the bridge.
    pub fn requeue(&mut self, id: i64, detail: &str) -> Result<()> {
        let now = now_str();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE orders SET state = 'ACCEPTED', attempt = attempt - 1, pos_ref = NULL, updated_at = ?2 WHERE id = ?1 AND state = 'SENT'",
            params![id, now],
        )?;
        tx.execute(
            "INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, 'ACCEPTED', ?3)",
            params![id, now, detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn mark_result_written(&mut self, id: i64) -> Result<()> {
        self.conn.execute("UPDATE orders SET result_written_at = ?2 WHERE id = ?1", params![id, now_str()])?;
        Ok(())
    }

    /// The oldest order waiting for the POS.
    pub fn next_accepted(&self) -> Result<Option<OrderRow>> {
        self.query_one("state = 'ACCEPTED' ORDER BY id LIMIT 1", [])
    }

    /// Orders whose outcome at the POS is not known to the bridge.
    pub fn open_orders(&self) -> Result<Vec<OrderRow>> {
        self.query_many("state IN ('SENT','PAYING','CANCELLING','UNKNOWN') ORDER BY id", [])
    }

    /// Final orders whose result has not been written yet (a crash between the two).
    pub fn unwritten_results(&self) -> Result<Vec<OrderRow>> {
        self.query_many(
            "state IN ('SUCCESS','REFUNDED','FAILED','CANCELLED','REVERSED') AND result_written_at IS NULL ORDER BY id",
            [],
        )
    }

    /// Refund amounts (fen, positive) already done or possibly under way for an order number.
    pub fn refunds_committed(&self, order_no: &str, except_id: Option<i64>) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(-amount_fen), 0) FROM orders WHERE order_no = ?1 AND kind = 'REFUND' \
             AND state IN ('ACCEPTED','SENT','PAYING','CANCELLING','UNKNOWN','REFUNDED') AND id IS NOT ?2",
            params![order_no, except_id],
            |r| r.get(0),
        )?)
    }

    /// Records where the order's results go (`reply_to`, a result file stem) and the claimed
    /// instruction file to archive once the order is final.
    pub fn add_reply(&mut self, id: i64, reply_to: &str, work_file: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO replies (order_id, reply_to, work_file) VALUES (?1, ?2, ?3) \
             ON CONFLICT (order_id, reply_to) DO UPDATE SET work_file = COALESCE(excluded.work_file, work_file)",
            params![id, reply_to, work_file],
        )?;
        Ok(())
    }

    /// (reply_to, work_file) of every answer an order owes.
    pub fn replies(&self, id: i64) -> Result<Vec<(String, Option<String>)>> {
        let mut stmt =
            self.conn.prepare("SELECT reply_to, work_file FROM replies WHERE order_id = ?1 ORDER BY rowid")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets the archived instruction file of a reply.
    pub fn clear_work_file(&mut self, id: i64, reply_to: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE replies SET work_file = NULL WHERE order_id = ?1 AND reply_to = ?2",
            params![id, reply_to],
        )?;
        Ok(())
    }

    /// Final orders, for the resolver's retry of result files that could not be written.
    pub fn by_pos_ref(&self, pos_ref: &str) -> Result<Option<OrderRow>> {
        self.query_one("pos_ref = ?1", [pos_ref])
    }

    /// Records a message id (its nonce); false when it was seen before (a replay).
    pub fn record_message(&mut self, nonce_hex: &str, source: &str, now_unix: i64) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO seen_messages (nonce, at_unix, source) VALUES (?1, ?2, ?3)",
            params![nonce_hex, now_unix, source],
        )?;
        Ok(n == 1)
    }

    /// Forgets message ids older than `before_unix` (outside the replay window they are refused
    /// by age anyway).
    pub fn prune_messages(&mut self, before_unix: i64) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM seen_messages WHERE at_unix < ?1", [before_unix])?)
    }

    /// Records an instruction refused before it became an order.
    pub fn record_reject(&mut self, source: &str, order_no: Option<&str>, code: &str, detail: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO rejects (at, source, order_no, error_code, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_str(), source, order_no, code, detail],
        )?;
        Ok(())
    }

    pub fn rejects(&self) -> Result<Vec<(String, Option<String>, String)>> {
        let mut stmt = self.conn.prepare("SELECT source, order_no, error_code FROM rejects ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The state history of one order: (time, state, detail).
    pub fn events(&self, id: i64) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self.conn.prepare("SELECT at, state, detail FROM events WHERE order_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps the POS's totals for a day (`YYYYMMDD`), replacing an earlier answer.
    pub fn save_pos_totals(&mut self, t: &hisbridge_protocol::PosTotals) -> Result<()> {
        let now = now_str();
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM pos_totals WHERE date = ?1", [&t.date])?;
        for l in &t.lines {
            tx.execute(
                "INSERT INTO pos_totals (date, channel, sales, sales_fen, refunds, refunds_fen, fetched_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.date,
                    l.channel.as_str(),
                    l.sales as i64,
                    l.sales_fen as i64,
                    l.refunds as i64,
                    l.refunds_fen as i64,
                    now
                ],
            )?;
        }
        if t.lines.is_empty() {
            // An answer with nothing in it is still an answer: remember when it came.
            tx.execute(
                "INSERT INTO pos_totals (date, channel, sales, sales_fen, refunds, refunds_fen, fetched_at) \
                 VALUES (?1, '', 0, 0, 0, 0, ?2)",
                params![t.date, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The POS's last totals for a day, and when they were fetched.
    pub fn pos_totals(&self, date: &str) -> Result<Option<(hisbridge_protocol::PosTotals, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT channel, sales, sales_fen, refunds, refunds_fen, fetched_at FROM pos_totals WHERE date = ?1",
        )?;
        let rows = stmt.query_map([date], |r| {
            Ok((
                r.get::<_, String>(0)?,
                [r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?].map(|v| v.max(0) as u64),
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut lines = Vec::new();
        let mut at = None;
        for row in rows {
            let (channel, [sales, sales_fen, refunds, refunds_fen], fetched) = row?;
            at = Some(fetched);
            if let Some(channel) = hisbridge_protocol::Channel::parse(&channel) {
                lines.push(hisbridge_protocol::ChannelTotals { channel, sales, sales_fen, refunds, refunds_fen });
            }
        }
        Ok(at.map(|at| (hisbridge_protocol::PosTotals { date: date.to_string(), lines }, at)))
    }

    /// Orders of one local day (`YYYY-MM-DD`): a final order counts on the day its outcome was
    /// known, an open one on the day it arrived.
    pub fn orders_of_day(&self, day: &str) -> Result<Vec<OrderRow>> {
        self.query_many("substr(COALESCE(finished_at, created_at), 1, 10) = ?1 ORDER BY id", [day])
    }

    /// Orders whose outcome is not final and that arrived on or before `day` (`YYYY-MM-DD`).
    pub fn open_items(&self, day: &str) -> Result<Vec<OrderRow>> {
        self.query_many(
            "state IN ('ACCEPTED','SENT','PAYING','CANCELLING','UNKNOWN') AND substr(created_at, 1, 10) <= ?1 ORDER BY id",
            [day],
        )
    }

    /// Orders whose day (as in [`Journal::orders_of_day`]) lies in `from..=to`.
    pub fn orders_between(&self, from: &str, to: &str) -> Result<Vec<OrderRow>> {
        self.query_many("substr(COALESCE(finished_at, created_at), 1, 10) BETWEEN ?1 AND ?2 ORDER BY id", [from, to])
    }

    /// Refunds done so far, by collection order number.
    pub fn refunded_by_order(&self) -> Result<HashMap<String, i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT order_no, SUM(-amount_fen) FROM orders WHERE kind = 'REFUND' AND state = 'REFUNDED' GROUP BY order_no",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Instructions refused on a day (`YYYY-MM-DD`).
    pub fn rejects_of_day(&self, day: &str) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM rejects WHERE substr(at, 1, 10) = ?1", [day], |r| r.get(0))?)
    }

    /// The local day (`YYYY-MM-DD`) of the first order ever journaled.
    pub fn first_day(&self) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT substr(MIN(created_at), 1, 10) FROM orders", [], |r| r.get(0))?)
    }

    /// Direct access for tools that fill a journal in bulk (benchmarks, generated test days).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn all_orders(&self) -> Result<Vec<OrderRow>> {
        self.query_many("1 ORDER BY id", [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(key: &'a str, amount: i64) -> NewOrder<'a> {
        NewOrder {
            key,
            order_no: key.split('@').next().unwrap(),
            refund_no: key.split_once('@').map(|(_, r)| r),
            terminal_id: "W01",
            amount_fen: amount,
            description: None,
            operator: None,
            orig_pos_ref: None,
            source: "test",
        }
    }

    #[test]
    fn lifecycle_is_recorded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let id = {
            let mut j = Journal::open(&path).unwrap();
            let o = j.insert(&new("A1", 1250)).unwrap();
            assert_eq!(o.state, State::Accepted);
            assert!(j.insert(&new("A1", 1250)).is_err(), "one row per order key");
            let o = j.start_attempt(o.id, "POS-1").unwrap();
            assert_eq!(o.pos_ref.as_deref(), Some("A1.1"));
            assert_eq!(j.open_orders().unwrap().len(), 1);
            o.id
        };
        let mut j = Journal::open(&path).unwrap();
        let o = j
            .transition(
                id,
                State::Success,
                &Update { pay_order_no: Some("420001"), channel: Some("WECHAT"), ..Default::default() },
            )
            .unwrap();
        assert_eq!(o.state, State::Success);
        assert!(o.finished_at.is_some());
        let states: Vec<_> = j.events(id).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(states, ["ACCEPTED", "SENT", "SUCCESS"]);
        assert_eq!(j.unwritten_results().unwrap().len(), 1);
        j.mark_result_written(id).unwrap();
        assert!(j.unwritten_results().unwrap().is_empty());
        let mode: String = j.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refund_sums() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.insert(&new("A1", 1000)).unwrap();
        let r1 = j.insert(&new("A1@R1", -300)).unwrap();
        let r2 = j.insert(&new("A1@R2", -200)).unwrap();
        j.transition(r2.id, State::Failed, &Update::default()).unwrap();
        assert_eq!(j.refunds_committed("A1", None).unwrap(), 300);
        assert_eq!(j.refunds_committed("A1", Some(r1.id)).unwrap(), 0);
    }
}
