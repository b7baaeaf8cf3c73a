//! The bridge's side of the hub: the journal's orders and events, in order, in batches.
//!
//! - The journal is read through a connection of its own, read only: the engine's writes never
//!   wait on it (WAL readers do not block the writer), and nothing here can change the journal.
//! - A batch is the events after the cursor (at most `batch` of them) and a snapshot of every
//!   order they touch, tagged with the order's last event at the time of reading. It goes in one
//!   hub transaction: events `ON CONFLICT DO NOTHING`, orders updated only by a newer snapshot.
//!   Sending a batch twice, or an older one after a newer, changes nothing.
//! - The cursor (`<journal>.hub-cursor`) moves only after the hub committed. On connecting, the
//!   bridge resumes from the lower of its cursor and what the hub holds for this journal: a
//!   cursor lost, or a hub restored from an older backup, is caught up again.
//! - An event number the hub holds with other content (a journal file replaced or restored under
//!   the same identity) stops replication for a person to look: nothing is overwritten.
//! - Every exchange has a time limit; a hub that is down, slow or unreachable is retried with a
//!   growing pause (1 s to 60 s). The status says how far behind the hub is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{schema, within, Client, HubError, HubSettings, Result, Target};
use crate::pos::{Link, PosStatus};

/// What the status file and `hisbridge service status` say about the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HubStatus {
    /// `connecting`, `connected`, `unreachable`, `stopped` (replication refused: see `error`).
    pub state: String,
    /// Journal events not yet committed on the hub.
    pub behind_events: i64,
    /// When the hub last committed a batch or a heartbeat (local time).
    pub last_ok: Option<String>,
    /// Why the hub cannot be reached or refused (no secret in it).
    pub error: Option<String>,
}

/// One journal event as the hub stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub order_id: i64,
    pub at: String,
    pub state: String,
    pub detail: Option<String>,
}

/// One order as the journal holds it, with `version` = its last event's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSnap {
    pub id: i64,
    pub version: i64,
    pub key: String,
    pub order_no: String,
    pub refund_no: Option<String>,
    pub terminal_id: String,
    pub kind: String,
    pub amount_fen: i64,
    pub description: Option<String>,
    pub operator: Option<String>,
    pub source: String,
    pub state: String,
    pub attempt: i32,
    pub pos_ref: Option<String>,
    pub orig_pos_ref: Option<String>,
    pub device_id: Option<String>,
    pub pay_order_no: Option<String>,
    pub channel: Option<String>,
    pub pos_code: Option<String>,
    pub pos_message: Option<String>,
    pub error_code: Option<String>,
    pub cancelled_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub finished_at: Option<String>,
    /// The day the order counts on (as the journal's reports count it).
    pub day: String,
}

#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<EventRow>,
    pub orders: Vec<OrderSnap>,
}

impl Batch {
    pub fn last(&self) -> Option<i64> {
        self.events.last().map(|e| e.id)
    }
}

/// The journal, read only.
pub struct JournalReader {
    conn: Connection,
}

fn jerr(e: rusqlite::Error) -> HubError {
    HubError::Journal(e.to_string())
}

const SNAP: &str = "SELECT id, (SELECT COALESCE(max(e.id), 0) FROM events e WHERE e.order_id = orders.id), key, order_no, \
     refund_no, terminal_id, kind, amount_fen, description, operator, source, state, attempt, pos_ref, orig_pos_ref, \
     device_id, pay_order_no, channel, pos_code, pos_message, error_code, cancelled_by, created_at, updated_at, sent_at, \
     finished_at, substr(COALESCE(finished_at, created_at), 1, 10) FROM orders WHERE id = ?1";

impl JournalReader {
    pub fn open(path: &Path) -> Result<Self> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(jerr)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(jerr)?;
        Ok(JournalReader { conn })
    }

    pub fn journal_id(&self) -> Result<String> {
        self.conn.query_row("SELECT value FROM meta WHERE name = 'journal_id'", [], |r| r.get(0)).map_err(jerr)
    }

    /// Changes when another connection (the engine's) commits: a cheap look at whether there
    /// is anything new.
    pub fn data_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(jerr)
    }

    pub fn last_event(&self) -> Result<i64> {
        self.conn.query_row("SELECT COALESCE(max(id), 0) FROM events", [], |r| r.get(0)).map_err(jerr)
    }

    /// Orders not final, and of those the ones whose outcome is unknown.
    pub fn open_counts(&self) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'UNKNOWN') FROM orders WHERE state NOT IN ({})",
                    crate::lifecycle::sql_list(crate::lifecycle::State::is_final)
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(jerr)
    }

    /// The events after `after` (at most `limit`) and the orders they touch, read in one
    /// transaction so that they agree.
    pub fn batch(&mut self, after: i64, limit: usize) -> Result<Batch> {
        let tx = self.conn.transaction().map_err(jerr)?;
        let mut b = Batch::default();
        {
            let mut st = tx
                .prepare_cached("SELECT id, order_id, at, state, detail FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(jerr)?;
            let rows = st
                .query_map(rusqlite::params![after, limit as i64], |r| {
                    Ok(EventRow {
                        id: r.get(0)?,
                        order_id: r.get(1)?,
                        at: r.get(2)?,
                        state: r.get(3)?,
                        detail: r.get(4)?,
                    })
                })
                .map_err(jerr)?;
            for r in rows {
                b.events.push(r.map_err(jerr)?);
            }
            let mut ids: Vec<i64> = b.events.iter().map(|e| e.order_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut st = tx.prepare_cached(SNAP).map_err(jerr)?;
            for id in ids {
                let snap = st
                    .query_row([id], |r| {
                        Ok(OrderSnap {
                            id: r.get(0)?,
                            version: r.get(1)?,
                            key: r.get(2)?,
                            order_no: r.get(3)?,
                            refund_no: r.get(4)?,
                            terminal_id: r.get(5)?,
                            kind: r.get(6)?,
                            amount_fen: r.get(7)?,
                            description: r.get(8)?,
                            operator: r.get(9)?,
                            source: r.get(10)?,
                            state: r.get(11)?,
                            attempt: r.get(12)?,
                            pos_ref: r.get(13)?,
                            orig_pos_ref: r.get(14)?,
                            device_id: r.get(15)?,
                            pay_order_no: r.get(16)?,
                            channel: r.get(17)?,
                            pos_code: r.get(18)?,
                            pos_message: r.get(19)?,
                            error_code: r.get(20)?,
                            cancelled_by: r.get(21)?,
                            created_at: r.get(22)?,
                            updated_at: r.get(23)?,
                            sent_at: r.get(24)?,
                            finished_at: r.get(25)?,
                            day: r.get(26)?,
                        })
                    })
                    .optional()
                    .map_err(jerr)?;
                if let Some(s) = snap {
                    b.orders.push(s);
                }
            }
        }
        tx.finish().map_err(jerr)?;
        Ok(b)
    }
}

/// The local cursor: the last event the hub committed, for this journal on that hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub hub_id: String,
    pub journal_id: String,
    pub event: i64,
}

pub fn cursor_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".hub-cursor");
    PathBuf::from(p)
}

pub fn read_cursor(path: &Path) -> Option<Cursor> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Written to a temporary file, flushed, renamed: a cursor is the old one or the new one.
pub fn write_cursor(path: &Path, c: &Cursor) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("hub-cursor.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(c).unwrap_or_default())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    crate::folders::sync_dir(dir);
    Ok(())
}

const ORDERS_UPSERT: &str = "INSERT INTO hisbridge.orders (journal_id, order_id, version, key, order_no, refund_no, \
     terminal_id, kind, amount_fen, description, operator, source, state, attempt, pos_ref, orig_pos_ref, device_id, \
     pay_order_no, channel, pos_code, pos_message, error_code, cancelled_by, created_at, updated_at, sent_at, finished_at, day) \
  SELECT $1, u.order_id, u.version, u.key, u.order_no, u.refund_no, u.terminal_id, u.kind, u.amount_fen, u.description, \
     u.operator, u.source, u.state, u.attempt, u.pos_ref, u.orig_pos_ref, u.device_id, u.pay_order_no, u.channel, \
     u.pos_code, u.pos_message, u.error_code, u.cancelled_by, u.created_at::timestamptz, u.updated_at::timestamptz, \
     u.sent_at::timestamptz, u.finished_at::timestamptz, u.day::date \
  FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], \
     $10::text[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[], $16::text[], $17::text[], $18::text[], \
     $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], \
     $28::text[]) \
  AS u(order_id, version, key, order_no, refund_no, terminal_id, kind, amount_fen, description, operator, source, state, \
     attempt, pos_ref, orig_pos_ref, device_id, pay_order_no, channel, pos_code, pos_message, error_code, cancelled_by, \
     created_at, updated_at, sent_at, finished_at, day) \
  ON CONFLICT (journal_id, order_id) DO UPDATE SET version = EXCLUDED.version, refund_no = EXCLUDED.refund_no, \
     state = EXCLUDED.state, attempt = EXCLUDED.attempt, pos_ref = EXCLUDED.pos_ref, device_id = EXCLUDED.device_id, \
     pay_order_no = EXCLUDED.pay_order_no, channel = EXCLUDED.channel, pos_code = EXCLUDED.pos_code, \
     pos_message = EXCLUDED.pos_message, error_code = EXCLUDED.error_code, cancelled_by = EXCLUDED.cancelled_by, \
     updated_at = EXCLUDED.updated_at, sent_at = EXCLUDED.sent_at, finished_at = EXCLUDED.finished_at, day = EXCLUDED.day, \
     received_at = now() \
  WHERE hisbridge.orders.version < EXCLUDED.version";

const EVENTS_INSERT: &str = "INSERT INTO hisbridge.events (journal_id, event_id, order_id, at, state, detail) \
  SELECT $1, u.event_id, u.order_id, u.at::timestamptz, u.state, u.detail \
  FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS u(event_id, order_id, at, state, detail) \
  ON CONFLICT (journal_id, event_id) DO NOTHING";

/// Events the hub holds under the same numbers with other content.
const EVENTS_DIFFER: &str = "SELECT e.event_id FROM hisbridge.events e \
  JOIN unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS u(event_id, order_id, at, state) \
    ON e.journal_id = $1 AND e.event_id = u.event_id \
  WHERE e.order_id <> u.order_id OR e.state <> u.state OR e.at <> u.at::timestamptz ORDER BY 1 LIMIT 1";

/// Sends one batch in one hub transaction. Idempotent.
pub async fn send_batch(client: &mut Client, journal_id: &str, b: &Batch) -> Result<()> {
    let tx = client.transaction().await?;
    if !b.orders.is_empty() {
        let o = &b.orders;
        macro_rules! col {
            ($f:ident) => {
                o.iter().map(|s| s.$f.clone()).collect::<Vec<_>>()
            };
        }
        let (id, version, key, order_no, refund_no, terminal_id, kind, amount) = (
            col!(id),
            col!(version),
            col!(key),
            col!(order_no),
            col!(refund_no),
            col!(terminal_id),
            col!(kind),
            col!(amount_fen),
        );
        let (description, operator, source, state, attempt, pos_ref, orig_pos_ref) = (
            col!(description),
            col!(operator),
            col!(source),
            col!(state),
            col!(attempt),
            col!(pos_ref),
            col!(orig_pos_ref),
        );
        let (device_id, pay_order_no, channel, pos_code, pos_message, error_code, cancelled_by) = (
            col!(device_id),
            col!(pay_order_no),
            col!(channel),
            col!(pos_code),
            col!(pos_message),
            col!(error_code),
            col!(cancelled_by),
        );
        let (created_at, updated_at, sent_at, finished_at, day) =
            (col!(created_at), col!(updated_at), col!(sent_at), col!(finished_at), col!(day));
        tx.execute(
            ORDERS_UPSERT,
            &[
                &journal_id,
                &id,
                &version,
                &key,
                &order_no,
                &refund_no,
                &terminal_id,
                &kind,
                &amount,
                &description,
                &operator,
                &source,
                &state,
                &attempt,
                &pos_ref,
                &orig_pos_ref,
                &device_id,
                &pay_order_no,
                &channel,
                &pos_code,
                &pos_message,
                &error_code,
                &cancelled_by,
                &created_at,
                &updated_at,
                &sent_at,
                &finished_at,
                &day,
            ],
        )
        .await?;
    }
    if !b.events.is_empty() {
        let e = &b.events;
        let id: Vec<i64> = e.iter().map(|x| x.id).collect();
        let order: Vec<i64> = e.iter().map(|x| x.order_id).collect();
        let at: Vec<&str> = e.iter().map(|x| x.at.as_str()).collect();
        let state: Vec<&str> = e.iter().map(|x| x.state.as_str()).collect();
        let detail: Vec<Option<&str>> = e.iter().map(|x| x.detail.as_deref()).collect();
        tx.execute(EVENTS_INSERT, &[&journal_id, &id, &order, &at, &state, &detail]).await?;
        if let Some(row) = tx.query_opt(EVENTS_DIFFER, &[&journal_id, &id, &order, &at, &state]).await? {
            let n: i64 = row.get(0);
            return Err(HubError::Diverged(format!(
                "the hub holds event {n} of journal {journal_id} with other content: this journal was replaced or \
                 restored under the same identity; replication stopped, nothing on the hub was changed (docs/hub.md, \
                 \"A journal that differs from the hub\")"
            )));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Registers the journal under this login, and says where the hub's copy of it ends.
pub async fn register(client: &Client, journal_id: &str) -> Result<i64> {
    client
        .execute("INSERT INTO hisbridge.journals (journal_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&journal_id])
        .await?;
    // Row-level security shows a bridge its own journals only.
    let mine = client.query_opt("SELECT 1 FROM hisbridge.journals WHERE journal_id = $1", &[&journal_id]).await?;
    if mine.is_none() {
        return Err(HubError::Diverged(format!(
            "journal {journal_id} is registered on the hub by another login: each window's bridge needs its own \
             login (docs/hub.md, \"Logins\")"
        )));
    }
    Ok(client
        .query_one("SELECT COALESCE(max(event_id), 0) FROM hisbridge.events WHERE journal_id = $1", &[&journal_id])
        .await?
        .get(0))
}

/// What a heartbeat says about a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub window: String,
    pub host: String,
    pub device_id: String,
    pub version: String,
    pub pos_link: String,
    pub pos_detail: Option<String>,
    pub paused: bool,
    pub open_items: i64,
    pub unknown_items: i64,
    pub attention: Vec<(String, String)>,
    pub behind_events: i64,
    pub heartbeat_secs: i64,
    pub started_at: String,
}

pub async fn send_heartbeat(client: &Client, journal_id: &str, h: &Heartbeat) -> Result<()> {
    let attention = serde_json::to_string(
        &h.attention.iter().map(|(k, v)| serde_json::json!({"what": k, "detail": v})).collect::<Vec<_>>(),
    )
    .unwrap_or_else(|_| "[]".into());
    client
        .execute(
            "INSERT INTO hisbridge.windows (journal_id, window_name, host, device_id, version, pos_link, pos_detail, \
               paused, open_items, unknown_items, attention, behind_events, heartbeat_secs, started_at, last_heartbeat) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint::int, $10::bigint::int, $11::text::jsonb, $12, \
               $13::bigint::int, $14::text::timestamptz, now()) \
             ON CONFLICT (journal_id) DO UPDATE SET window_name = EXCLUDED.window_name, host = EXCLUDED.host, \
               device_id = EXCLUDED.device_id, version = EXCLUDED.version, pos_link = EXCLUDED.pos_link, \
               pos_detail = EXCLUDED.pos_detail, paused = EXCLUDED.paused, open_items = EXCLUDED.open_items, \
               unknown_items = EXCLUDED.unknown_items, attention = EXCLUDED.attention, \
               behind_events = EXCLUDED.behind_events, heartbeat_secs = EXCLUDED.heartbeat_secs, \
               started_at = EXCLUDED.started_at, last_heartbeat = now()",
            &[
                &journal_id,
                &h.window,
                &h.host,
                &h.device_id,
                &h.version,
                &h.pos_link,
                &h.pos_detail,
                &h.paused,
                &h.open_items,
                &h.unknown_items,
                &attention,
                &h.behind_events,
                &h.heartbeat_secs,
                &h.started_at,
            ],
        )
        .await?;
    Ok(())
}

/// The POS link as the hub's page shows it.
pub fn link_text(p: &PosStatus) -> (String, Option<String>) {
    match &p.link {
        Link::Ready => ("ready".into(), None),
        Link::Handshaking => ("handshaking".into(), None),
        Link::PortClosed { reason } => ("closed".into(), Some(reason.clone())),
        Link::WrongDevice { reported } => ("wrong_device".into(), Some(reported.clone())),
    }
}

/// What the journal says for the status and the heartbeat.
struct Facts {
    last_event: i64,
    open: i64,
    unknown: i64,
    journal_id: String,
}

fn facts(r: &mut JournalReader) -> Result<Facts> {
    let (open, unknown) = r.open_counts()?;
    Ok(Facts { last_event: r.last_event()?, open, unknown, journal_id: r.journal_id()? })
}

/// Runs `f` on the journal reader away from the runtime's threads (SQLite blocks).
async fn on_reader<T: Send + 'static>(
    reader: &Arc<Mutex<JournalReader>>,
    f: impl FnOnce(&mut JournalReader) -> Result<T> + Send + 'static,
) -> Result<T> {
    let r = reader.clone();
    tokio::task::spawn_blocking(move || f(&mut r.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .unwrap_or_else(|e| Err(HubError::Journal(e.to_string())))
}

/// How often a caught-up replication looks whether the journal moved.
const JOURNAL_POLL: Duration = Duration::from_millis(250);

/// What the replication task watches besides the journal.
pub struct Inputs {
    pub pos: watch::Receiver<PosStatus>,
    pub health: watch::Receiver<crate::engine::Health>,
    pub notices: tokio::sync::broadcast::Receiver<crate::engine::Notice>,
}

/// The replication task: runs until the bridge stops. Never touches the journal's writer.
pub async fn run(
    settings: HubSettings,
    journal: PathBuf,
    device_id: String,
    mut inputs: Inputs,
    status: watch::Sender<HubStatus>,
) {
    let target = Target::of(&settings);
    let cursor_file = cursor_path(&journal);
    let started_at = crate::journal::now_str();
    let mut paused = false;
    let mut pause_backoff = Duration::from_secs(1);
    let set = |state: &str, behind: Option<i64>, error: Option<String>, ok: bool| {
        status.send_if_modified(|s| {
            let mut n = s.clone();
            n.state = state.to_string();
            if let Some(b) = behind {
                n.behind_events = b;
            }
            n.error = error;
            if ok {
                n.last_ok = Some(crate::journal::now_str());
            }
            // A moving `last_ok` alone is not news: the status file is not rewritten for it.
            let changed = n.state != s.state || n.behind_events != s.behind_events || n.error != s.error;
            *s = n;
            changed
        });
    };
    set("connecting", None, None, false);
    let reader = loop {
        match JournalReader::open(&journal) {
            Ok(r) => break Arc::new(Mutex::new(r)),
            Err(e) => {
                set("stopped", None, Some(e.to_string()), false);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    loop {
        // One connection's life: connect, check, resume, then batches and heartbeats until an
        // exchange fails.
        let res: Result<()> = async {
            let mut client = target.connect().await?;
            within(settings.timeout, schema::check(&client)).await?;
            let hub_id = within(settings.timeout, schema::hub_id(&client)).await?;
            let journal_id = on_reader(&reader, |r| r.journal_id()).await?;
            let on_hub = within(settings.timeout, register(&client, &journal_id)).await?;
            let local = read_cursor(&cursor_file)
                .filter(|c| c.hub_id == hub_id && c.journal_id == journal_id)
                .map_or(0, |c| c.event);
            let mut cursor = local.min(on_hub);
            if local > on_hub {
                tracing::warn!(local, on_hub, "the hub holds less of this journal than the cursor says; sending again from the hub's end");
            }
            tracing::info!(url = %super::redact(&target.url), from_event = cursor, "hub connected");
            pause_backoff = Duration::from_secs(1);
            let mut next_beat = tokio::time::Instant::now();
            loop {
                let limit = settings.batch;
                let batch = on_reader(&reader, move |r| r.batch(cursor, limit)).await?;
                if let Some(last) = batch.last() {
                    within(settings.timeout, send_batch(&mut client, &journal_id, &batch)).await?;
                    crate::failpoint::hit("hub_committed");
                    cursor = last;
                    if let Err(e) = write_cursor(&cursor_file, &Cursor { hub_id: hub_id.clone(), journal_id: journal_id.clone(), event: cursor }) {
                        tracing::warn!(error = %e, "hub cursor not written (the next start sends again from the hub's end)");
                    }
                }
                let Facts { last_event, open, unknown, .. } = on_reader(&reader, facts).await?;
                let behind = (last_event - cursor).max(0);
                set("connected", Some(behind), None, true);
                if behind > 0 && batch.last().is_some() {
                    // More to send: the next batch at once, a heartbeat only when due.
                    if tokio::time::Instant::now() < next_beat {
                        continue;
                    }
                }
                if tokio::time::Instant::now() >= next_beat {
                    let (pos_link, pos_detail) = link_text(&inputs.pos.borrow());
                    let attention =
                        inputs.health.borrow().iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect();
                    let beat = Heartbeat {
                        window: settings.window.clone(),
                        host: crate::setup::computer_name(),
                        device_id: device_id.clone(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        pos_link,
                        pos_detail,
                        paused,
                        open_items: open,
                        unknown_items: unknown,
                        attention,
                        behind_events: behind,
                        heartbeat_secs: settings.heartbeat.as_secs() as i64,
                        started_at: started_at.clone(),
                    };
                    within(settings.timeout, send_heartbeat(&client, &journal_id, &beat)).await?;
                    next_beat = tokio::time::Instant::now() + settings.heartbeat;
                }
                if behind > 0 {
                    continue;
                }
                // Caught up: wait for the journal to move (another connection's commit, seen
                // through SQLite's data_version), the POS or the window to change (a heartbeat
                // within a second), or the next heartbeat.
                let seen = on_reader(&reader, |r| r.data_version()).await?;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_beat) => break,
                        _ = tokio::time::sleep(JOURNAL_POLL) => {
                            if on_reader(&reader, |r| r.data_version()).await? != seen {
                                break;
                            }
                        }
                        c = inputs.pos.changed() => {
                            if c.is_err() { return Ok(()) }
                            next_beat = next_beat.min(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                        c = inputs.health.changed() => {
                            if c.is_err() { return Ok(()) }
                            next_beat = next_beat.min(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                        n = inputs.notices.recv() => match n {
                            Ok(crate::engine::Notice::Paused(p)) => {
                                paused = p;
                                next_beat = tokio::time::Instant::now();
                            }
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => return Ok(()),
                        },
                    }
                }
            }
        }
        .await;
        match res {
            Ok(()) => {
                set("stopped", None, Some("the bridge stopped".into()), false);
                return;
            }
            Err(e @ HubError::Diverged(_)) => {
                tracing::error!(error = %e, "hub replication stopped");
                set("stopped", None, Some(e.to_string()), false);
                // A person must look; retrying the same batch now would say the same thing.
                tokio::time::sleep(Duration::from_secs(300)).await;
            }
            Err(e) => {
                let text = e.to_string();
                tracing::warn!(error = %text, retry_in = ?pause_backoff, "hub not reachable");
                set("unreachable", None, Some(text), false);
                tokio::time::sleep(pause_backoff).await;
                pause_backoff = (pause_backoff * 2).min(Duration::from_secs(60));
            }
        }
        // The count of events behind, while not connected.
        if let Ok(Facts { last_event, journal_id, .. }) = on_reader(&reader, facts).await {
            let c = read_cursor(&cursor_file).filter(|c| c.journal_id == journal_id).map_or(0, |c| c.event);
            let (state, error) = {
                let s = status.borrow();
                (s.state.clone(), s.error.clone())
            };
            set(&state, Some((last_event - c).max(0)), error, false);
        }
        // Notices that arrived while away matter only for `paused`.
        loop {
            match inputs.notices.try_recv() {
                Ok(crate::engine::Notice::Paused(p)) => paused = p,
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }
}
