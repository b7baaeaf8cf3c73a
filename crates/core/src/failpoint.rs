//! Named points where the crash test stops the bridge (`HISBRIDGE_FAILPOINT=<name>`): the
//! process announces `FAILPOINT <name>` on stderr and freezes until the test SIGKILLs it.
//! Without the variable each point is one relaxed load.

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// The points, in the order an order passes them.
pub const POINTS: [&str; 7] = ["claimed", "accepted", "sent", "requested", "paying", "finished", "written"];

pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("HISBRIDGE_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        use std::io::Write;
        let mut e = std::io::stderr();
        let _ = writeln!(e, "FAILPOINT {name}");
        let _ = e.flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
