//! Human-readable tables.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use protocol::api::{JobView, Standing};

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The ranking of a finished job.
pub fn ranking(view: &JobView) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "rank",
        "method",
        "standing",
        "relerr",
        "mean time",
        "min time",
        "median",
        "setting",
        "values",
    ]);
    for e in &view.ranking {
        let standing = match (e.standing, e.tier.as_deref()) {
            (Standing::Reached, _) => "reached".to_owned(),
            (Standing::Missed, Some(tier)) => format!("missed (tier {tier})"),
            (Standing::Missed, None) => "missed".to_owned(),
            (Standing::Failed, _) => format!("failed: {}", e.reason.as_deref().unwrap_or("")),
        };
        let values = e
            .values
            .iter()
            .map(|v| format!("{v:.6}"))
            .collect::<Vec<_>>()
            .join(", ");
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        t.add_row(vec![
            Cell::new(e.rank.map_or(String::new(), |r| r.to_string())),
            Cell::new(&e.method),
            Cell::new(standing),
            right(e.relerr.map_or(String::new(), |r| format!("{r:.2e}"))),
            right(e.time.map_or(String::new(), |t| seconds(t.mean_s))),
            right(e.time.map_or(String::new(), |t| seconds(t.min_s))),
            right(e.time.map_or(String::new(), |t| seconds(t.median_s))),
            Cell::new(e.setting.clone().unwrap_or_default()),
            Cell::new(values),
        ]);
    }
    t.to_string()
}
