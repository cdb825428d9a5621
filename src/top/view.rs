//! One screen of `caching-proxy top`, drawn from the dashboard's JSON:
//! the figures now, alerts, routes, the top URLs by hits and by misses,
//! and the last reloads and purges.

use std::net::SocketAddr;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use serde_json::Value;

/// What one frame shows.
pub struct Frame<'a> {
    /// The instance's admin address.
    pub address: SocketAddr,
    /// Its latest `/dashboard.json`.
    pub data: &'a Value,
    /// Why the latest refresh failed, if it did.
    pub error: Option<&'a str>,
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn num(v: &Value, places: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.places$}"))
}

fn bytes(v: &Value) -> String {
    let Some(mut v) = v.as_f64() else {
        return "-".to_owned();
    };
    let mut unit = 0;
    let units = ["B", "KB", "MB", "GB", "TB"];
    while v >= 1000.0 && unit < units.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", units[unit])
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

/// A table row for each element of the JSON array `list` (at most `max`).
fn rows(list: &Value, max: usize, cells: impl Fn(&Value) -> Vec<String>) -> Vec<Row<'static>> {
    list.as_array()
        .into_iter()
        .flatten()
        .take(max)
        .map(|item| Row::new(cells(item)))
        .collect()
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

/// Draws `frame` on the whole terminal.
pub fn draw(f: &mut ratatui::Frame<'_>, frame: &Frame<'_>) {
    let d = frame.data;
    let c = &d["current"];
    let alerts: Vec<Line> = d["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| Line::from(text(&a["text"])).fg(Color::Red))
        .chain(
            frame
                .error
                .map(|e| Line::from(format!("no answer: {e}")).fg(Color::Red)),
        )
        .collect();
    let route_count = d["routes"].as_array().map_or(0, Vec::len).min(10) as u16;
    let [head, warn, figures, routes, tops, events, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(alerts.len() as u16),
        Constraint::Length(4),
        Constraint::Length(route_count + 3),
        Constraint::Min(6),
        Constraint::Length(7),
        Constraint::Length(1),
    ])
    .areas(f.area());

    let title = format!(
        "caching-proxy v{} at {}",
        d["version"].as_str().unwrap_or("?"),
        frame.address
    );
    f.render_widget(Line::from(title).add_modifier(Modifier::BOLD), head);
    f.render_widget(Paragraph::new(alerts), warn);

    let fill = match (c["cache_bytes"].as_f64(), c["cache_max_bytes"].as_f64()) {
        (Some(b), Some(m)) if m > 0.0 => format!("{:.1}%", 100.0 * b / m),
        _ => "-".to_owned(),
    };
    let label = |s: &str| Span::styled(format!("{s} "), Style::new().fg(Color::DarkGray));
    let lines = vec![
        Line::from(vec![
            label("req/s"),
            Span::raw(format!("{:<10}", num(&c["requests_per_s"], 1))),
            label("hit ratio"),
            Span::raw(format!("{:<8}", pct(&c["hit_ratio"]))),
            label("by bytes"),
            Span::raw(format!("{:<8}", pct(&c["byte_hit_ratio"]))),
            label("requests"),
            Span::raw(num(&c["requests_total"], 0)),
        ]),
        Line::from(vec![
            label("from cache"),
            Span::raw(format!(
                "{:<10}",
                bytes(&c["bytes_from_cache_per_s"]) + "/s"
            )),
            label("from origins"),
            Span::raw(format!(
                "{:<10}",
                bytes(&c["bytes_from_origin_per_s"]) + "/s"
            )),
            label("origin p50"),
            Span::raw(format!("{:<10}", ms(&c["origin_p50_ms"]))),
            label("p99"),
            Span::raw(ms(&c["origin_p99_ms"])),
        ]),
        Line::from(vec![
            label("cache fill"),
            Span::raw(format!("{fill:<8}")),
            label("size"),
            Span::raw(format!(
                "{} of {}, {} entries  ",
                bytes(&c["cache_bytes"]),
                bytes(&c["cache_max_bytes"]),
                num(&c["cache_entries"], 0)
            )),
            label("evictions/s"),
            Span::raw(num(&c["evictions_per_s"], 1)),
        ]),
    ];
    f.render_widget(Paragraph::new(lines), figures);

    let header =
        |cells: &[&'static str]| Row::new(cells.to_vec()).style(Style::new().fg(Color::DarkGray));
    let route_rows = rows(&d["routes"], usize::MAX, |r| {
        vec![
            text(&r["route"]),
            text(&r["origin"]),
            num(&r["requests_per_s"], 2),
            pct(&r["hit_ratio"]),
            num(&r["errors_per_s"], 2),
        ]
    });
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    f.render_widget(
        Table::new(route_rows, widths)
            .header(header(&["route", "origin", "req/s", "hit ratio", "5xx/s"]))
            .block(Block::bordered().title(" routes, last minute ")),
        routes,
    );

    let [hits, misses] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(tops);
    for (list, area, title) in [
        (&d["top"]["hits"], hits, " top URLs by hits "),
        (&d["top"]["misses"], misses, " top URLs by misses "),
    ] {
        let urls = rows(list, usize::MAX, |u| {
            vec![text(&u["url"]), num(&u["count"], 0)]
        });
        let widths = [Constraint::Fill(1), Constraint::Length(9)];
        f.render_widget(
            Table::new(urls, widths).block(Block::bordered().title(title)),
            area,
        );
    }

    let event_rows = rows(&d["events"], 5, |e| {
        let outcome = if e["ok"] == true { "ok" } else { "refused" };
        vec![text(&e["kind"]), outcome.to_owned(), text(&e["text"])]
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    f.render_widget(
        Table::new(event_rows, widths).block(Block::bordered().title(" reloads and purges ")),
        events,
    );
    f.render_widget(Line::from("q quits").fg(Color::DarkGray), foot);
}
