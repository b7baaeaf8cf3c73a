//! Entry points for the fuzz targets in `fuzz/` (one-line shims call these).

use std::time::{Duration, Instant};

use crate::frame::{Deframer, Token};
use crate::link::{Link, LinkConfig};
use crate::message::{Reply, Request};

/// Feeds `data` in pieces to a deframer and a link, with time moving on; decodes every frame.
pub fn frames(data: &[u8]) {
    let t0 = Instant::now();
    let mut d = Deframer::new();
    let mut link = Link::new(LinkConfig::default(), 1);
    for (i, chunk) in data.chunks(7).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 50);
        d.push(chunk, now);
        d.handle_timeout(now);
        link.handle_input(chunk, now);
        link.handle_timeout(now);
        while let Some(tok) = d.poll() {
            if let Token::Frame(p) = tok {
                let _ = Request::decode(&p);
                let _ = Reply::decode(&p);
            }
        }
        while link.poll_event().is_some() {}
        while link.poll_transmit().is_some() {}
    }
}
