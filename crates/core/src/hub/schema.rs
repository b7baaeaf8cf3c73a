//! The hub's schema, `hisbridge` in the hospital's database, as versioned migrations.
//!
//! Roles (cluster-wide, created once, NOLOGIN; each login is made a member):
//! - `hisbridge_bridge`: a window's bridge. Inserts and updates only rows it owns (row-level
//!   security on `bridge = current_user`), reads only its own.
//! - `hisbridge_reader`: the monitoring page and reports. Reads everything, writes nothing.
//! - `hisbridge_finance`: a reader that may also record reconciliations.
//!
//! Migration `i` takes the schema from version `i` to `i + 1`; never edit a published one.

use super::{Client, HubError, Result};

pub const MIGRATIONS: &[&str] = &[
    // 1: windows, journals, orders, events, reconciliations; roles and policies.
    r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hisbridge_bridge') THEN CREATE ROLE hisbridge_bridge NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hisbridge_reader') THEN CREATE ROLE hisbridge_reader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hisbridge_finance') THEN CREATE ROLE hisbridge_finance NOLOGIN IN ROLE hisbridge_reader; END IF;
END $$;

CREATE TABLE hisbridge.meta (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO hisbridge.meta (name, value) VALUES ('hub_id', md5(random()::text || clock_timestamp()::text));

-- One row per journal: a window's bridge, identified by the journal's own id.
CREATE TABLE hisbridge.journals (
  journal_id text PRIMARY KEY,
  bridge     name NOT NULL DEFAULT current_user,
  first_seen timestamptz NOT NULL DEFAULT now()
);

-- Each window's latest heartbeat.
CREATE TABLE hisbridge.windows (
  journal_id     text PRIMARY KEY REFERENCES hisbridge.journals,
  bridge         name NOT NULL DEFAULT current_user,
  window_name    text NOT NULL,
  host           text NOT NULL,
  device_id      text NOT NULL,
  version        text NOT NULL,
  pos_link       text NOT NULL,
  pos_detail     text,
  paused         boolean NOT NULL,
  open_items     integer NOT NULL,
  unknown_items  integer NOT NULL,
  attention      jsonb NOT NULL DEFAULT '[]',
  behind_events  bigint NOT NULL,
  heartbeat_secs integer NOT NULL,
  started_at     timestamptz NOT NULL,
  last_heartbeat timestamptz NOT NULL DEFAULT now()
);

-- Each order as its journal last said it; `version` is the journal's last event for it.
CREATE TABLE hisbridge.orders (
  journal_id   text NOT NULL REFERENCES hisbridge.journals,
  order_id     bigint NOT NULL,
  bridge       name NOT NULL DEFAULT current_user,
  version      bigint NOT NULL,
  key          text NOT NULL,
  order_no     text NOT NULL,
  refund_no    text,
  terminal_id  text NOT NULL,
  kind         text NOT NULL,
  amount_fen   bigint NOT NULL,
  description  text,
  operator     text,
  source       text NOT NULL,
  state        text NOT NULL,
  attempt      integer NOT NULL,
  pos_ref      text,
  orig_pos_ref text,
  device_id    text,
  pay_order_no text,
  channel      text,
  pos_code     text,
  pos_message  text,
  error_code   text,
  cancelled_by text,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  sent_at      timestamptz,
  finished_at  timestamptz,
  day          date NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (journal_id, order_id)
);
CREATE INDEX orders_day ON hisbridge.orders (day);
CREATE INDEX orders_pay_order_no ON hisbridge.orders (pay_order_no) WHERE pay_order_no IS NOT NULL;
CREATE INDEX orders_pos_ref ON hisbridge.orders (pos_ref) WHERE pos_ref IS NOT NULL;
CREATE INDEX orders_open ON hisbridge.orders (journal_id) WHERE state NOT IN ('SUCCESS','REFUNDED','FAILED','CANCELLED','REVERSED');

-- Every state change of every order, exactly as journaled.
CREATE TABLE hisbridge.events (
  journal_id  text NOT NULL REFERENCES hisbridge.journals,
  event_id    bigint NOT NULL,
  order_id    bigint NOT NULL,
  bridge      name NOT NULL DEFAULT current_user,
  at          timestamptz NOT NULL,
  state       text NOT NULL,
  detail      text,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (journal_id, event_id)
);

-- The merchant's bills as matched by `hisbridge hub report --statement`.
CREATE TABLE hisbridge.reconciliations (
  id          bigserial PRIMARY KEY,
  day         date NOT NULL,
  source      text NOT NULL,
  statement   text NOT NULL,
  run_at      timestamptz NOT NULL DEFAULT now(),
  run_by      name NOT NULL DEFAULT current_user,
  matched     integer NOT NULL,
  differences jsonb NOT NULL
);
CREATE INDEX reconciliations_day ON hisbridge.reconciliations (day, run_at);

GRANT USAGE ON SCHEMA hisbridge TO hisbridge_bridge, hisbridge_reader;
GRANT SELECT ON hisbridge.meta, hisbridge.migrations TO hisbridge_bridge, hisbridge_reader;
GRANT SELECT, INSERT, UPDATE ON hisbridge.journals, hisbridge.windows, hisbridge.orders TO hisbridge_bridge;
GRANT SELECT, INSERT ON hisbridge.events TO hisbridge_bridge;
GRANT SELECT ON hisbridge.journals, hisbridge.windows, hisbridge.orders, hisbridge.events, hisbridge.reconciliations TO hisbridge_reader;
GRANT INSERT ON hisbridge.reconciliations TO hisbridge_finance;
GRANT USAGE ON SEQUENCE hisbridge.reconciliations_id_seq TO hisbridge_finance;

ALTER TABLE hisbridge.journals ENABLE ROW LEVEL SECURITY;
ALTER TABLE hisbridge.windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE hisbridge.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE hisbridge.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE hisbridge.reconciliations ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON hisbridge.journals TO hisbridge_bridge USING (bridge = current_user) WITH CHECK (bridge = current_user);
CREATE POLICY own_rows ON hisbridge.windows TO hisbridge_bridge USING (bridge = current_user) WITH CHECK (bridge = current_user);
CREATE POLICY own_rows ON hisbridge.orders TO hisbridge_bridge USING (bridge = current_user) WITH CHECK (bridge = current_user);
CREATE POLICY own_rows ON hisbridge.events TO hisbridge_bridge USING (bridge = current_user) WITH CHECK (bridge = current_user);
CREATE POLICY read_all ON hisbridge.journals FOR SELECT TO hisbridge_reader USING (true);
CREATE POLICY read_all ON hisbridge.windows FOR SELECT TO hisbridge_reader USING (true);
CREATE POLICY read_all ON hisbridge.orders FOR SELECT TO hisbridge_reader USING (true);
CREATE POLICY read_all ON hisbridge.events FOR SELECT TO hisbridge_reader USING (true);
CREATE POLICY read_all ON hisbridge.reconciliations FOR SELECT TO hisbridge_reader USING (true);
CREATE POLICY record ON hisbridge.reconciliations FOR INSERT TO hisbridge_finance WITH CHECK (run_by = current_user);
"#,
];

/// The schema version this program writes and reads.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// The hub's schema version; 0 where there is none (or this login cannot see it).
pub async fn version(client: &Client) -> Result<i32> {
    let exists: bool = client.query_one("SELECT to_regclass('hisbridge.migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client.query_one("SELECT COALESCE(max(version), 0) FROM hisbridge.migrations", &[]).await?.get(0))
}

/// Fails unless the hub holds the schema this program knows (the bridge's check at connect).
pub async fn check(client: &Client) -> Result<()> {
    match version(client).await? {
        0 => Err(HubError::NoSchema),
        v if v > VERSION => Err(HubError::SchemaTooNew { found: v, known: VERSION }),
        // An older schema still takes what this program sends until a migration changes it.
        _ => Ok(()),
    }
}

/// The hub's own identity (made by the first migration): a cursor kept for another hub is not
/// this hub's.
pub async fn hub_id(client: &Client) -> Result<String> {
    Ok(client.query_one("SELECT value FROM hisbridge.meta WHERE name = 'hub_id'", &[]).await?.get(0))
}

/// Applies every pending migration, each in its own transaction, under an advisory lock (two
/// `hub migrate` at once apply each migration once). Returns the versions applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>> {
    let found = version(client).await?;
    if found > VERSION {
        return Err(HubError::SchemaTooNew { found, known: VERSION });
    }
    let mut applied = Vec::new();
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let v = i as i32 + 1;
        let tx = client.transaction().await?;
        // 0x4849_5342 = "HISB".
        tx.execute("SELECT pg_advisory_xact_lock(1212765026)", &[]).await?;
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS hisbridge;
             CREATE TABLE IF NOT EXISTS hisbridge.migrations (
               version integer PRIMARY KEY,
               applied_at timestamptz NOT NULL DEFAULT now(),
               applied_by name NOT NULL DEFAULT current_user)",
        )
        .await?;
        let done: bool =
            tx.query_one("SELECT EXISTS (SELECT 1 FROM hisbridge.migrations WHERE version = $1)", &[&v]).await?.get(0);
        if done {
            tx.commit().await?;
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO hisbridge.migrations (version) VALUES ($1)", &[&v]).await?;
        tx.commit().await?;
        applied.push(v);
    }
    Ok(applied)
}

/// The hub roles a login can be given (`hisbridge hub add-login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Bridge,
    Reader,
    Finance,
}

impl Role {
    pub fn group(self) -> &'static str {
        match self {
            Role::Bridge => "hisbridge_bridge",
            Role::Reader => "hisbridge_reader",
            Role::Finance => "hisbridge_finance",
        }
    }
}

/// Creates a login in one of the hub's roles, or sets the password of an existing one (and
/// grants the role). The name is checked here: it is spliced into DDL, which takes no parameters.
pub async fn add_login(client: &Client, name: &str, role: Role, password: &str) -> Result<bool> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok || name.starts_with("pg_") || name.starts_with("hisbridge_") {
        return Err(HubError::Other(format!(
            "login name {name:?}: lower-case letters, digits and _ only, starting with a letter, at most 63 \
             (and not pg_... or hisbridge_...)"
        )));
    }
    let exists: bool =
        client.query_one("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", &[&name]).await?.get(0);
    // The server gets the SCRAM verifier, never the password (nor does its statement log); it is
    // quoted by the server, never spliced by a format string here.
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let quoted: String = client.query_one("SELECT quote_literal($1)", &[&verifier]).await?.get(0);
    let verb = if exists { "ALTER" } else { "CREATE" };
    client.batch_execute(&format!("{verb} ROLE {name} LOGIN PASSWORD {quoted}")).await?;
    client.batch_execute(&format!("GRANT {} TO {name}", role.group())).await?;
    Ok(!exists)
}
