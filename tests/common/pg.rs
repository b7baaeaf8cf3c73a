//! A throwaway PostgreSQL cluster from Debian's packages: its own folder, a loopback port,
//! password logins (SCRAM), stopped and removed at the end. Can be stopped, killed and started
//! again in the middle of a test.
//!
//! Where PostgreSQL is not installed the test is skipped, unless `HISBRIDGE_REQUIRE_PG=1`
//! (scripts/test-all.sh installs it and sets that, so in CI it must run).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const ADMIN: &str = "hubadmin";
pub const ADMIN_PASSWORD: &str = "admin-secret-1";

pub struct Pg {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    /// Run the server tools as this user (initdb refuses root).
    as_user: Option<String>,
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Pg {
    /// A new cluster, started, with a `hub` database owned by [`ADMIN`]; None where PostgreSQL
    /// is not installed (and not required).
    pub fn start() -> Option<Pg> {
        Self::start_with(false)
    }

    /// With `durable`, the server syncs its WAL as a production one does (the benchmark's).
    pub fn start_with(durable: bool) -> Option<Pg> {
        let Some(bin) = find_bin() else {
            if std::env::var("HISBRIDGE_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("PostgreSQL is required (HISBRIDGE_REQUIRE_PG=1) and not installed: apt-get install postgresql");
            }
            eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let root = unsafe_is_root();
        let as_user = root.then(|| "postgres".to_string());
        let dir = tempfile::Builder::new().prefix("hisbridge-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, ADMIN_PASSWORD).unwrap();
        if let Some(u) = &as_user {
            let st = Command::new("chown").args(["-R", &format!("{u}:")]).arg(dir.path()).status().unwrap();
            assert!(st.success());
        }
        let pg = Pg { dir, port: free_port(), bin, as_user };
        let out = pg
            .tool("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", ADMIN, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let conf = format!(
            "fsync = {}\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 200\n",
            if durable { "on" } else { "off" },
            pg.port,
            pg.dir.path().display()
        );
        let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        c.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), c).unwrap();
        pg.up();
        pg.psql("postgres", "CREATE DATABASE hub");
        Some(pg)
    }

    fn tool(&self, name: &str) -> Command {
        match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(self.bin.join(name));
                c
            }
            None => Command::new(self.bin.join(name)),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server and waits until it takes connections.
    pub fn up(&self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server as a crash would: every backend killed, no checkpoint.
    pub fn kill(&self) {
        let _ = self.tool("pg_ctl").arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
    }

    /// The URL of a login (no password in it).
    pub fn url(&self, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/hub", self.port)
    }

    /// The admin's password in a file, for `--password-file`.
    pub fn admin_password_file(&self) -> PathBuf {
        self.dir.path().join("pw")
    }

    /// Runs SQL as the admin through psql; returns its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", ADMIN, "-d", db, "-c", sql])
            .env("PGPASSWORD", ADMIN_PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `hisbridge hub ...` against this cluster as the admin.
    pub fn hub_cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hisbridge"))
            .arg("hub")
            .args(args)
            .arg("--db")
            .arg(self.url(ADMIN))
            .arg("--password-file")
            .arg(self.admin_password_file())
            .output()
            .unwrap()
    }

    /// Creates the schema and a bridge login; returns the login's password file.
    pub fn migrate_and_login(&self, name: &str, role: &str, dir: &Path) -> PathBuf {
        let out = self.hub_cmd(&["migrate"]);
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        let pw = dir.join(format!("{name}.password"));
        let out = self.hub_cmd(&["add-login", "--name", name, "--role", role, "--password-out", pw.to_str().unwrap()]);
        assert!(out.status.success(), "add-login: {}", String::from_utf8_lossy(&out.stderr));
        pw
    }
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA and a certificate for 127.0.0.1 / localhost signed by it, made with openssl in `dir`.
/// Returns (ca.crt, server.crt, server.key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=Hospital Test CA",
        "-days",
        "2",
    ]);
    ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=hub"]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.crt"), dir.join("server.crt"), dir.join("server.key"))
}
