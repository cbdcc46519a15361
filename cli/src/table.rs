//! Human-readable tables that fit the terminal.
//!
//! At a terminal a table is as wide as the terminal (80 columns read well): long cells (a setting, a
//! failure's reason, a worker's name) wrap inside their column, and the wide columns (min and median
//! times, the values, thread counts, …) appear only with `--wide`. Piped, nothing wraps: every row is one
//! line, so `grep` and `awk` see whole rows. `COLUMNS=<n>` sets the width either way.

use std::io::IsTerminal as _;

use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, TableStyle};

use protocol::api::{JobView, Leaderboard, Standing};

/// A rule under the header and no other lines: the lightest frame that still reads as a table, and the one
/// that leaves the most columns to the text.
const STYLE: TableStyle =
    TableStyle::new().header_separator(comfy_table::LineStyle::none().fill('─').junction('─'));

/// What a column holds, which decides how it is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// A short word (an id, a state): as wide as its content, never wrapped.
    Word,
    /// A number: right-aligned, never wrapped.
    Num,
    /// Free text (a setting, a reason, a name): takes the width left over and wraps there.
    Text,
}

/// How tables are laid out on this output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Width to fit; `None`: unlimited (one line per row).
    pub width: Option<u16>,
    /// Show the wide columns too.
    pub wide: bool,
}

impl Layout {
    /// The layout for standard output: `COLUMNS` when set, else the terminal's width when standard output
    /// is a terminal, else unlimited.
    pub fn for_stdout(wide: bool) -> Self {
        let from_env = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|&c| c > 0);
        let width = from_env.or_else(|| {
            let out = std::io::stdout();
            out.is_terminal()
                .then(|| console::Term::stdout().size_checked().map(|(_, cols)| cols))
                .flatten()
        });
        Self { width, wide }
    }

    /// An empty table in this layout with these columns.
    pub fn table<S: Into<String>>(&self, columns: impl IntoIterator<Item = (S, Col)>) -> Table {
        let (header, kinds): (Vec<Cell>, Vec<Col>) =
            columns.into_iter().map(|(h, k)| (Cell::new(h.into()), k)).unzip();
        let mut t = Table::new();
        t.load_style(STYLE);
        t.set_header(header);
        match self.width {
            Some(w) => t
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w),
            None => t.set_content_arrangement(ContentArrangement::Disabled),
        };
        let last = kinds.len().saturating_sub(1);
        for (i, (column, kind)) in t.column_iter_mut().zip(kinds).enumerate() {
            // With the style's blank junction: two spaces between columns, none before the first or after
            // the last.
            column.set_padding((0, if i == last { 0 } else { 1 }));
            match kind {
                Col::Word => {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                }
                Col::Num => {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                    column.set_cell_alignment(CellAlignment::Right);
                }
                Col::Text => {}
            }
        }
        t
    }
}

/// A table as text, without the padding at the ends of its lines.
pub fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A paragraph under a table, wrapped to the layout's width (first line after `first`, the others after
/// `rest`), newline-terminated; piped (no width), one line.
pub fn wrap(text: &str, layout: Layout, first: &str, rest: &str) -> String {
    let Some(width) = layout.width else {
        return format!("{first}{text}\n");
    };
    let options = textwrap::Options::new(usize::from(width).max(20))
        .initial_indent(first)
        .subsequent_indent(rest);
    let mut out = textwrap::fill(text, options);
    out.push('\n');
    out
}

/// A duration in the unit that gives it three or four significant digits.
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A speed-up ratio with two significant digits (three from 100 on) and a `×`: `135×`, `13×`, `1.2×`,
/// `0.3×`, `0.045×`.
pub fn ratio(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        return String::new();
    }
    let decimals = if r >= 10.0 {
        0
    } else {
        // Two significant digits: one decimal at [1, 10), two at [0.1, 1), …
        (1 - r.log10().floor() as i32).max(0) as usize
    };
    let s = format!("{r:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}×")
}

/// The ranking of a job: rank, method, standing, relerr, mean time and setting (or, for a failure, its
/// reason); `--wide` adds the tier of a miss, min and median time, threads, worker and the values.
pub fn ranking(view: &JobView, layout: Layout) -> String {
    let mut columns = vec![
        ("rank", Col::Num),
        ("method", Col::Word),
        ("standing", Col::Word),
        ("relerr", Col::Num),
        ("mean time", Col::Num),
    ];
    if layout.wide {
        columns.extend([
            ("min time", Col::Num),
            ("median", Col::Num),
            ("threads", Col::Num),
            ("worker", Col::Word),
        ]);
    }
    columns.push(("setting", Col::Text));
    if layout.wide {
        columns.push(("values", Col::Text));
    }
    let mut t = layout.table(columns);
    for e in &view.ranking {
        let standing = match (e.standing, e.tier.as_deref()) {
            (Standing::Reached, _) => "reached".to_owned(),
            (Standing::Missed, Some(tier)) if layout.wide => format!("missed (tier {tier})"),
            (Standing::Missed, _) => "missed".to_owned(),
            (Standing::Failed, _) => "failed".to_owned(),
        };
        let mut row = vec![
            Cell::new(e.rank.map_or(String::new(), |r| r.to_string())),
            Cell::new(&e.method),
            Cell::new(standing),
            Cell::new(e.relerr.map_or(String::new(), |r| format!("{r:.2e}"))),
            Cell::new(e.time.map_or(String::new(), |t| seconds(t.mean_s))),
        ];
        if layout.wide {
            row.extend([
                Cell::new(e.time.map_or(String::new(), |t| seconds(t.min_s))),
                Cell::new(e.time.map_or(String::new(), |t| seconds(t.median_s))),
                Cell::new(e.threads.map_or(String::new(), |n| n.to_string())),
                Cell::new(e.worker.clone().unwrap_or_default()),
            ]);
        }
        let setting = match e.standing {
            Standing::Failed => e.reason.clone(),
            _ => e.setting.clone(),
        };
        row.push(Cell::new(setting.unwrap_or_default()));
        if layout.wide {
            let values = e
                .values
                .iter()
                .map(|v| format!("{v:.6}"))
                .collect::<Vec<_>>()
                .join(", ");
            row.push(Cell::new(values));
        }
        t.add_row(row);
    }
    render(&t)
}

/// The work-precision table of a ladder job: every level of every method.
pub fn work_precision(view: &JobView, layout: Layout) -> String {
    let mut t = layout.table([
        ("method", Col::Word),
        ("level", Col::Num),
        ("relerr", Col::Num),
        ("mean time", Col::Num),
        ("reached", Col::Word),
        ("setting", Col::Text),
    ]);
    for w in &view.work_precision {
        t.add_row(vec![
            Cell::new(&w.method),
            Cell::new(w.level.to_string()),
            Cell::new(format!("{:.2e}", w.relerr)),
            Cell::new(seconds(w.time_s)),
            Cell::new(if w.reached { "yes" } else { "" }),
            Cell::new(&w.setting),
        ]);
    }
    render(&t)
}

/// A problem's leaderboard: rank, method, runs, reached, best time, best relerr and worker; `--wide` adds
/// the median time and the threads of the fastest run.
pub fn leaderboard(board: &Leaderboard, layout: Layout) -> String {
    let mut columns = vec![
        ("rank", Col::Num),
        ("method", Col::Word),
        ("runs", Col::Num),
        ("reached", Col::Num),
        ("best time", Col::Num),
    ];
    if layout.wide {
        columns.push(("median time", Col::Num));
    }
    columns.push(("best relerr", Col::Num));
    if layout.wide {
        columns.push(("threads", Col::Num));
    }
    columns.push(("worker", Col::Text));
    let mut t = layout.table(columns);
    for e in &board.entries {
        let mut row = vec![
            Cell::new(e.rank.map_or(String::new(), |r| r.to_string())),
            Cell::new(&e.method),
            Cell::new(e.runs.to_string()),
            Cell::new(e.reached.to_string()),
            Cell::new(e.best_time_s.map_or(String::new(), seconds)),
        ];
        if layout.wide {
            row.push(Cell::new(e.median_time_s.map_or(String::new(), seconds)));
        }
        row.push(Cell::new(
            e.best_relerr.map_or(String::new(), |r| format!("{r:.2e}")),
        ));
        if layout.wide {
            row.push(Cell::new(e.threads.map_or(String::new(), |n| n.to_string())));
        }
        row.push(Cell::new(e.worker.clone().unwrap_or_default()));
        t.add_row(row);
    }
    render(&t)
}

/// The widest line of `text`, in terminal columns.
#[cfg(test)]
pub fn widest(text: &str) -> usize {
    text.lines().map(console::measure_text_width).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use protocol::api::{LeaderboardEntry, RankEntry, TimeStats};

    fn entry(rank: Option<u32>, method: &str, standing: Standing, setting: &str) -> RankEntry {
        RankEntry {
            rank,
            method: method.into(),
            standing,
            tier: (standing == Standing::Missed).then(|| "1e-3".into()),
            values: vec![2.758_443_856, 7.485_087_594, 14.702_019_67],
            std_errors: None,
            relerr: Some(3.07e-5),
            level: Some(4),
            setting: Some(setting.into()),
            time: Some(TimeStats {
                mean_s: 6.7e-6,
                min_s: 6.5e-6,
                median_s: 6.6e-6,
                runs: 3,
            }),
            threads: Some(1),
            worker: Some("worker-123456@a-rather-long-host-name.example".into()),
            reason: (standing == Standing::Failed)
                .then(|| "time limit of 120 s reached while tuning at level 9 of 12".into()),
        }
    }

    fn view() -> JobView {
        let mut v: JobView = serde_json::from_value(serde_json::json!({
            "id": "7d0c6f8e-0d3a-4a63-9d3e-0a5b8c1f2e3d",
            "problem": "1aI",
            "status": "completed",
            "tolerance": 1e-4,
            "repeats": 3,
            "progress": {"total": 3, "done": 3, "failed": 0},
            "created_ms": 0,
            "tasks": [],
            "ranking": []
        }))
        .expect("a minimal job view");
        v.ranking = vec![
            entry(
                Some(1),
                "closed-form",
                Standing::Reached,
                "Black–Scholes–Merton formula",
            ),
            entry(
                Some(2),
                "fd-nu",
                Standing::Reached,
                "Ns=160, Nt=80, strike-concentrated grid (sinh, c=0.1·K), Crank–Nicolson with Rannacher start, Richardson",
            ),
            entry(
                None,
                "mc",
                Standing::Missed,
                "N=1048576 antithetic pairs, exact GBM step",
            ),
            entry(None, "qmc", Standing::Failed, ""),
        ];
        v
    }

    #[test]
    fn a_ranking_fits_80_columns_and_wraps_long_settings() {
        let narrow = Layout {
            width: Some(80),
            wide: false,
        };
        let text = ranking(&view(), narrow);
        assert!(widest(&text) <= 80, "{text}");
        // Every word of the long setting is there, spread over lines.
        assert!(
            text.contains("strike-concentrated") && text.contains("Richardson"),
            "{text}"
        );
        assert!(text.contains("time limit of 120 s"), "{text}");
        assert!(
            !text.contains("min time") && !text.contains("14.702020"),
            "{text}"
        );
        let wide = ranking(
            &view(),
            Layout {
                width: None,
                wide: true,
            },
        );
        assert!(wide.contains("min time") && wide.contains("14.702020"), "{wide}");
    }

    #[test]
    fn piped_tables_keep_each_row_on_one_line() {
        let piped = Layout {
            width: None,
            wide: false,
        };
        let text = ranking(&view(), piped);
        // A header, its rule and one line per entry.
        assert_eq!(text.lines().count(), 2 + view().ranking.len(), "{text}");
        let fd = text.lines().find(|l| l.contains("fd-nu")).expect("fd-nu row");
        assert!(fd.contains("reached") && fd.contains("Richardson"), "{fd}");
    }

    #[test]
    fn a_leaderboard_fits_80_columns() {
        let board = Leaderboard {
            problem: "1aI".into(),
            tolerance: 1e-4,
            entries: ["closed-form", "cos", "fd-nu", "rbf-fd"]
                .iter()
                .enumerate()
                .map(|(i, m)| LeaderboardEntry {
                    rank: Some(i as u32 + 1),
                    method: (*m).into(),
                    runs: 12,
                    reached: 12,
                    best_time_s: Some(1.3e-6 * (i + 1) as f64),
                    median_time_s: Some(1.5e-6 * (i + 1) as f64),
                    best_relerr: Some(2.0e-15),
                    threads: Some(2),
                    worker: Some("worker-123456@a-rather-long-host-name.example".into()),
                })
                .collect(),
        };
        for width in [80, 60] {
            let text = leaderboard(
                &board,
                Layout {
                    width: Some(width),
                    wide: false,
                },
            );
            assert!(widest(&text) <= usize::from(width), "{text}");
            assert!(text.contains("rbf-fd") && text.contains("best time"), "{text}");
        }
    }

    #[test]
    fn ratios_keep_two_significant_digits_and_never_round_to_zero() {
        let got: Vec<String> = [135.4, 13.2, 9.96, 1.23, 0.3, 0.346, 0.045].map(ratio).to_vec();
        assert_eq!(got, ["135×", "13×", "10×", "1.2×", "0.3×", "0.35×", "0.045×"]);
        assert_eq!(ratio(0.0), "");
        assert_eq!(ratio(f64::NAN), "");
    }
}
