//! The status page's charts: plain server-rendered SVG, no JavaScript. Orders
//! captured and synced per minute over the last hours, and how long each
//! consumer's oldest unsynced order has waited.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

/// How far back the throughput chart looks.
pub(super) const HOURS: i64 = 3;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;
/// Line colours: captured first, then one per consumer.
const COLOURS: [&str; 6] = [
    "#555", "#176b1d", "#1f5fbf", "#a35a00", "#7a1fa2", "#b00020",
];

/// Per-minute counts as a line chart: captured, then synced per consumer.
pub(super) fn throughput(
    captured: &[(DateTime<Utc>, u64)],
    synced: &[(String, DateTime<Utc>, u64)],
    consumers: &[String],
    now: DateTime<Utc>,
) -> Markup {
    let start = now - Duration::hours(HOURS);
    let minutes = (HOURS * 60) as usize;
    let slot = |t: &DateTime<Utc>| ((*t - start).num_minutes().max(0) as usize).min(minutes - 1);
    let mut series: Vec<(String, Vec<u64>)> = vec![("captured".into(), vec![0; minutes])];
    for (t, n) in captured {
        series[0].1[slot(t)] += n;
    }
    let mut by_consumer: BTreeMap<&str, Vec<u64>> = consumers
        .iter()
        .map(|c| (c.as_str(), vec![0; minutes]))
        .collect();
    for (c, t, n) in synced {
        if let Some(line) = by_consumer.get_mut(c.as_str()) {
            line[slot(t)] += n;
        }
    }
    series.extend(
        by_consumer
            .into_iter()
            .map(|(c, line)| (format!("synced {c}"), line)),
    );
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |i: usize| LEFT + (WIDTH - LEFT) * i as f64 / (minutes - 1) as f64;
    let y = |n: u64| (HEIGHT - BOTTOM) * (1.0 - n as f64 / top as f64);
    html! {
        svg #throughput xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT + 10.0)
            viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + 10.0)) role="img"
            aria-label=(format!("Orders per minute over the last {HOURS} hours")) {
            line x1=(LEFT) y1="0" x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#bbb" {}
            line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#bbb" {}
            text x="2" y="10" font-size="10" { (top) "/min" }
            text x="2" y=(HEIGHT - BOTTOM) font-size="10" { "0" }
            text x=(LEFT) y=(HEIGHT) font-size="10" { "-" (HOURS) "h" }
            text x=(WIDTH - 24.0) y=(HEIGHT) font-size="10" { "now" }
            @for (i, (name, values)) in series.iter().enumerate() {
                polyline class="series" data-series=(name) fill="none"
                    stroke=(COLOURS[i % COLOURS.len()]) stroke-width="1.5"
                    points=(values.iter().enumerate().map(|(k, n)| format!("{:.1},{:.1}", x(k), y(*n))).collect::<Vec<_>>().join(" ")) {}
            }
        }
        p.legend {
            @for (i, (name, values)) in series.iter().enumerate() {
                span style=(format!("color: {}", COLOURS[i % COLOURS.len()])) { "■ " }
                (name) " (" (values.iter().sum::<u64>()) ")  "
            }
        }
    }
}

/// How long each consumer's oldest unsynced order has waited, as bars.
pub(super) fn oldest_unsynced(oldest: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> Markup {
    let ages: Vec<(&str, i64)> = oldest
        .iter()
        .map(|(c, t)| (c.as_str(), (now - *t).num_seconds().max(0)))
        .collect();
    let top = ages.iter().map(|a| a.1).max().unwrap_or(0).max(1);
    let row = 22.0;
    let height = row * ages.len().max(1) as f64;
    html! {
        svg #oldest xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height)
            viewBox=(format!("0 0 {WIDTH} {height}")) role="img"
            aria-label="Age of each consumer's oldest unsynced order" {
            @if ages.is_empty() {
                text x="0" y="15" font-size="12" { "every order is synced for every consumer" }
            }
            @for (i, (consumer, age)) in ages.iter().enumerate() {
                @let y = i as f64 * row;
                text x="0" y=(y + 15.0) font-size="12" { (consumer) }
                rect class="age" data-consumer=(consumer) x="120" y=(y + 4.0)
                    width=(format!("{:.1}", (WIDTH - 260.0) * *age as f64 / top as f64 + 1.0))
                    height="14" fill=(if *age > 3600 { "#b00020" } else { "#1f5fbf" }) {}
                text x=(WIDTH - 130.0) y=(y + 15.0) font-size="12" { (human(*age)) }
            }
        }
    }
}

/// An age as people read it.
fn human(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_with_orders_rises_above_the_baseline_and_the_legend_totals_them() {
        let now = Utc::now();
        let svg = throughput(
            &[(now - Duration::minutes(2), 5)],
            &[("erp".into(), now - Duration::minutes(1), 3)],
            &["erp".into()],
            now,
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("captured (5)") && svg.contains("synced erp (3)"),
            "{svg}"
        );
        assert!(
            svg.contains("5/min"),
            "the scale tops at the busiest minute"
        );
        let bars = oldest_unsynced(&[("erp".into(), now - Duration::hours(2))], now).into_string();
        assert!(bars.contains("2 h") && bars.contains("#b00020"), "{bars}");
    }
}
