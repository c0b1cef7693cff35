//! `order-sync status`: what the ledger says, as a table for a terminal. The
//! same facts a person would otherwise dig out of the ledger with SQL.

use std::{collections::BTreeMap, fmt::Write};

use chrono::{DateTime, Utc};

use crate::ledger::{Instance, Ledger, LedgerError, OrderView, State};

/// Instances not seen for this long are listed as gone.
pub const ALIVE_WITHIN: chrono::Duration = chrono::Duration::seconds(10);

/// The report: rows by consumer and state, then the instances.
pub async fn report(ledger: &Ledger, now: DateTime<Utc>) -> Result<String, LedgerError> {
    let counts = ledger.counts().await?;
    let instances = ledger.instances(now - chrono::Duration::hours(1)).await?;
    let mut out = render(&counts, &instances, now);
    let pauses = ledger.pauses().await?;
    let _ = writeln!(out, "\npublishing:");
    if pauses.is_empty() {
        let _ = writeln!(out, "  running");
    }
    for p in pauses {
        let who = if p.consumer == crate::ledger::ALL_CONSUMERS {
            "all consumers".to_owned()
        } else {
            p.consumer
        };
        let _ = writeln!(
            out,
            "  PAUSED for {who} since {} by {}{}",
            p.paused_at.format("%Y-%m-%d %H:%M:%S UTC"),
            p.paused_by,
            p.reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
    }
    Ok(out)
}

/// One order, for `order-sync show`.
pub fn render_order(view: &OrderView) -> String {
    let t = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "order {} (entity_id {}, store {}) placed {} captured {}",
        view.increment_id.as_deref().unwrap_or("?"),
        view.entity_id,
        view.store_id
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        t(view.placed_at),
        t(Some(view.captured_at))
    );
    for d in &view.deliveries {
        let event = match d.seq {
            0 => d.event.as_str().to_owned(),
            n => format!("#{n} {}", d.event),
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<18} {:<9} attempts {:<3} last sent {}  next {}  synced {}  message_id {}",
            d.consumer,
            event,
            d.state.as_str(),
            d.attempts,
            t(d.last_published_at),
            t(d.next_attempt_at),
            t(d.synced_at),
            d.message_id
        );
        if let Some(b) = d.blocked_by {
            let _ = writeln!(
                out,
                "  {:<16} blocked: waits for event #{b} of this order to be synced",
                ""
            );
        }
        if let Some(e) = &d.last_error {
            let _ = writeln!(out, "  {:<16} last error: {e}", "");
        }
        if d.remote_id.is_some() || d.remote_url.is_some() {
            let remote = [d.remote_id.as_deref(), d.remote_url.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("  ");
            let _ = writeln!(out, "  {:<16} in {}: {remote}", "", d.consumer);
        }
    }
    out
}

pub fn render(
    counts: &[(String, State, u64)],
    instances: &[Instance],
    now: DateTime<Utc>,
) -> String {
    let mut by_consumer: BTreeMap<&str, [u64; State::ALL.len()]> = BTreeMap::new();
    for (consumer, state, n) in counts {
        let row = by_consumer.entry(consumer).or_default();
        if let Some(i) = State::ALL.iter().position(|s| s == state) {
            row[i] += n;
        }
    }
    let mut out = format!("{:<20}", "consumer");
    for state in State::ALL {
        let _ = write!(out, " {:>9}", state.as_str());
    }
    out.push('\n');
    if by_consumer.is_empty() {
        let _ = writeln!(out, "(no orders recorded yet)");
    }
    for (consumer, n) in &by_consumer {
        let _ = write!(out, "{consumer:<20}");
        for count in n {
            let _ = write!(out, " {count:>9}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\ninstances:");
    if instances.is_empty() {
        let _ = writeln!(out, "  (none running)");
    }
    for i in instances {
        let alive = now - i.last_seen_at <= ALIVE_WITHIN;
        let _ = writeln!(
            out,
            "  {:<40} {:<20} {:<9} last seen {}s ago{}",
            i.instance_id,
            i.roles,
            if i.capture_leader && alive {
                "CAPTURING"
            } else {
                ""
            },
            (now - i.last_seen_at).num_seconds().max(0),
            if alive { "" } else { " (gone)" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_counts_per_consumer_and_who_captures() {
        let now = Utc::now();
        let inst = |id: &str, leader: bool, ago: i64| Instance {
            instance_id: id.into(),
            hostname: "h".into(),
            pid: 1,
            roles: "capture,relay,acks".into(),
            capture_leader: leader,
            started_at: now,
            last_seen_at: now - chrono::Duration::seconds(ago),
        };
        let text = render(
            &[
                ("erp".into(), State::Synced, 7),
                ("erp".into(), State::Parked, 1),
                ("wms".into(), State::Published, 2),
            ],
            &[inst("a", true, 1), inst("b", false, 2), inst("c", true, 60)],
            now,
        );
        let erp = text.lines().find(|l| l.starts_with("erp")).unwrap();
        assert_eq!(
            erp.split_whitespace().collect::<Vec<_>>(),
            // held pending published failed parked skipped synced
            ["erp", "0", "0", "0", "0", "1", "0", "7"]
        );
        assert!(text
            .lines()
            .any(|l| l.contains(" a ") && l.contains("CAPTURING")));
        let c = text
            .lines()
            .find(|l| l.trim_start().starts_with("c "))
            .unwrap();
        assert!(c.contains("(gone)") && !c.contains("CAPTURING"), "{c}");
    }
}
