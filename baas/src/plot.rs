//! Plots as standalone SVG documents: work-precision diagrams (relative error against time, log-log, one
//! series per method, the tolerance as a dashed line) and bar charts of the time to the tolerance.
//!
//! The SVG is written by hand: two chart kinds with decade ticks do not need a plotting crate, and writing
//! it here gives every series a `<g class="series" data-method=…>` group and every point a `<title>`
//! tooltip (method, level, setting, error, time), which browsers show on hover and tests can count.

use std::fmt::Write as _;

use protocol::api::{JobView, Leaderboard, Standing, WorkPoint};
use protocol::{Outcome, TaskResult};

/// Tableau 10: distinguishable, colour-blind friendlier than the defaults of most tools.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
];
/// Errors below this are drawn at it (closed forms can be exact to the last bit: relerr 0).
const RELERR_FLOOR: f64 = 1e-16;
/// Times below this are drawn at it.
const TIME_FLOOR: f64 = 1e-9;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;

/// One point of a work-precision series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Mean time, seconds.
    pub time_s: f64,
    /// Relative error.
    pub relerr: f64,
    /// Whether it reached the tolerance (drawn filled; misses hollow).
    pub reached: bool,
    /// Tooltip text besides error and time, e.g. `level 3 (N=64)`.
    pub label: String,
}

/// The points of one method, joined in the order given (ladder order for a sweep).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Method id.
    pub name: String,
    /// Its points.
    pub points: Vec<Point>,
}

/// One bar: a method's time to the tolerance, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Method id.
    pub name: String,
    /// Time to the tolerance, seconds; `None` when it missed or failed.
    pub time_s: Option<f64>,
    /// Shown after the bar (or instead of it), e.g. `level 2` or `missed (tier 1e-3)`.
    pub note: String,
}

/// The series of a job: every level of every method for a ladder job (its `work_precision`), otherwise
/// one point per ranking entry that was priced.
pub fn job_series(view: &JobView) -> Vec<Series> {
    if !view.work_precision.is_empty() {
        return group(view.work_precision.iter().map(|p| {
            (
                p.method.as_str(),
                Point {
                    time_s: p.time_s,
                    relerr: p.relerr,
                    reached: p.reached,
                    label: level_label(p),
                },
            )
        }));
    }
    group(view.ranking.iter().filter_map(|e| {
        Some((
            e.method.as_str(),
            Point {
                time_s: e.time?.mean_s,
                relerr: e.relerr?,
                reached: e.standing == Standing::Reached,
                label: format!(
                    "level {} ({})",
                    e.level.unwrap_or_default(),
                    e.setting.as_deref().unwrap_or("")
                ),
            },
        ))
    }))
}

/// The series of a leaderboard: every recorded run of every method (all levels of ladder jobs), by level.
pub fn results_series(results: &[TaskResult]) -> Vec<Series> {
    let mut measured: Vec<(&str, u32, Point)> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Succeeded(m) => Some((
                r.method.as_str(),
                m.level,
                Point {
                    time_s: protocol::api::TimeStats::of(&m.times_s)?.mean_s,
                    relerr: m.relerr,
                    reached: m.reached,
                    label: format!("level {} ({}), worker {}", m.level, m.setting, r.worker),
                },
            )),
            Outcome::Failed { .. } => None,
        })
        .collect();
    measured.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    group(measured.into_iter().map(|(name, _, p)| (name, p)))
}

/// Bars of a job's ranking: each reached method's mean time at its level; misses and failures noted.
pub fn job_bars(view: &JobView) -> Vec<Bar> {
    view.ranking
        .iter()
        .map(|e| match e.standing {
            Standing::Reached => Bar {
                name: e.method.clone(),
                time_s: e.time.map(|t| t.mean_s),
                note: format!("level {}", e.level.unwrap_or_default()),
            },
            Standing::Missed => Bar {
                name: e.method.clone(),
                time_s: None,
                note: format!("missed (tier {})", e.tier.as_deref().unwrap_or("fail")),
            },
            Standing::Failed => Bar {
                name: e.method.clone(),
                time_s: None,
                note: "failed".to_owned(),
            },
        })
        .collect()
}

/// Bars of a leaderboard: each method's best time to the tolerance over its runs.
pub fn leaderboard_bars(board: &Leaderboard) -> Vec<Bar> {
    board
        .entries
        .iter()
        .map(|e| Bar {
            name: e.method.clone(),
            time_s: e.best_time_s,
            note: match e.best_time_s {
                Some(_) => format!("best of {} run(s)", e.reached),
                None => format!("never reached ({} run(s))", e.runs),
            },
        })
        .collect()
}

fn level_label(p: &WorkPoint) -> String {
    format!("level {} ({})", p.level, p.setting)
}

/// Group `(method, point)` pairs into series, keeping the first-seen order of methods and of points.
fn group<'a>(items: impl IntoIterator<Item = (&'a str, Point)>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (name, point) in items {
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                name: name.to_owned(),
                points: vec![point],
            }),
        }
    }
    out
}

/// A log10 axis over whole decades.
#[derive(Debug, Clone, Copy)]
struct LogAxis {
    lo: i32,
    hi: i32,
}

impl LogAxis {
    /// The decades covering `values` (and `extra`), at least one decade wide; `default` when empty.
    fn covering(values: impl IntoIterator<Item = f64>, default: (i32, i32)) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
        if !lo.is_finite() {
            return Self {
                lo: default.0,
                hi: default.1,
            };
        }
        // A value on a decade (1e-6 whose log10 is -5.999…) must not widen the axis by a decade.
        let (lo, mut hi) = ((lo + 1e-9).floor() as i32, (hi - 1e-9).ceil() as i32);
        if hi <= lo {
            hi = lo + 1;
        }
        Self { lo, hi }
    }

    /// Position of `v` in [0, 1] along the axis (clamped).
    fn frac(self, v: f64) -> f64 {
        let t = (v.max(f64::MIN_POSITIVE).log10() - f64::from(self.lo)) / f64::from(self.hi - self.lo);
        t.clamp(0.0, 1.0)
    }

    /// The decades to label: every one, or every second/third… when there are many.
    fn ticks(self) -> impl Iterator<Item = i32> {
        let step = ((self.hi - self.lo) / 8 + 1).max(1);
        (self.lo..=self.hi).filter(move |d| (d - self.lo) % step == 0)
    }
}

fn decade(d: i32) -> String {
    format!("1e{d}")
}

/// Escape text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A time in readable units.
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn header(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12"><title>{t}</title><rect class="background" width="{width}" height="{height}" fill="white"/><text class="title" x="{x}" y="24" text-anchor="middle" font-size="15" font-weight="600">{t}</text>"#,
        t = esc(title),
        x = width / 2.0,
    );
}

/// A work-precision diagram: relerr against mean time on log-log axes with decade ticks, one series per
/// method (points joined in order; filled when they reached the tolerance, hollow otherwise), a legend
/// and the tolerance as a dashed horizontal line.
pub fn work_precision(title: &str, tolerance: f64, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|s| &s.points);
    let x_axis = LogAxis::covering(points().map(|p| p.time_s.max(TIME_FLOOR)), (-6, 0));
    let y_axis = LogAxis::covering(
        points()
            .map(|p| p.relerr.max(RELERR_FLOOR))
            .chain(std::iter::once(tolerance)),
        (-8, 0),
    );
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |v: f64| LEFT + x_axis.frac(v.max(TIME_FLOOR)) * pw;
    let y = |v: f64| TOP + (1.0 - y_axis.frac(v.max(RELERR_FLOOR))) * ph;

    let mut out = String::new();
    header(&mut out, WIDTH, HEIGHT, title);
    // Frame, grid and decade ticks.
    let _ = write!(
        out,
        r##"<g class="axes" stroke="#333" fill="none"><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></g>"##
    );
    out.push_str(r#"<g class="x-ticks" text-anchor="middle">"#);
    for d in x_axis.ticks() {
        let px = x(10f64.powi(d));
        let _ = write!(
            out,
            r##"<g class="tick" data-decade="{d}"><line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{yb}" stroke="#ddd"/><line x1="{px:.1}" y1="{yb}" x2="{px:.1}" y2="{yt}" stroke="#333"/><text x="{px:.1}" y="{yl}">{label}</text></g>"##,
            yb = TOP + ph,
            yt = TOP + ph + 5.0,
            yl = TOP + ph + 18.0,
            label = decade(d),
        );
    }
    out.push_str("</g>");
    out.push_str(r#"<g class="y-ticks" text-anchor="end">"#);
    for d in y_axis.ticks() {
        let py = y(10f64.powi(d));
        let _ = write!(
            out,
            r##"<g class="tick" data-decade="{d}"><line x1="{LEFT}" y1="{py:.1}" x2="{xr}" y2="{py:.1}" stroke="#ddd"/><line x1="{xl}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}" stroke="#333"/><text x="{xt}" y="{pyt:.1}">{label}</text></g>"##,
            xr = LEFT + pw,
            xl = LEFT - 5.0,
            xt = LEFT - 8.0,
            pyt = py + 4.0,
            label = decade(d),
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r#"<text class="x-label" x="{cx}" y="{ly}" text-anchor="middle">mean time (s)</text><text class="y-label" transform="translate(18 {cy}) rotate(-90)" text-anchor="middle">relative error</text>"#,
        cx = LEFT + pw / 2.0,
        ly = HEIGHT - 14.0,
        cy = TOP + ph / 2.0,
    );
    // Tolerance.
    let ty = y(tolerance);
    let _ = write!(
        out,
        r##"<g class="tolerance" data-tolerance="{tolerance:e}"><line x1="{LEFT}" y1="{ty:.1}" x2="{xr}" y2="{ty:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{xt}" y="{tyt:.1}" text-anchor="end" fill="#c00">tolerance {tolerance:e}</text></g>"##,
        xr = LEFT + pw,
        xt = LEFT + pw - 4.0,
        tyt = ty - 4.0,
    );
    // Series.
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            r#"<g class="series" data-method="{name}" stroke="{colour}" fill="{colour}">"#,
            name = esc(&s.name)
        );
        if s.points.len() > 1 {
            let path: Vec<String> = s
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.time_s), y(p.relerr)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        for p in &s.points {
            let _ = write!(
                out,
                r#"<circle class="point" cx="{cx:.1}" cy="{cy:.1}" r="4" stroke-width="1.5"{hollow}><title>{tip}</title></circle>"#,
                cx = x(p.time_s),
                cy = y(p.relerr),
                hollow = if p.reached { "" } else { r#" fill="white""# },
                tip = esc(&format!(
                    "{}: {}, relerr {:.2e}, {}{}",
                    s.name,
                    p.label,
                    p.relerr,
                    seconds(p.time_s),
                    if p.reached { "" } else { " (missed)" }
                )),
            );
        }
        out.push_str("</g>");
    }
    // Legend.
    out.push_str(r#"<g class="legend">"#);
    let lx = LEFT + pw + 16.0;
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let _ = write!(
            out,
            r#"<g class="entry" data-method="{name}"><line x1="{lx}" y1="{ly}" x2="{lx2}" y2="{ly}" stroke="{colour}" stroke-width="2"/><circle cx="{lxc}" cy="{ly}" r="4" fill="{colour}"/><text x="{lxt}" y="{lyt}">{name} ({n})</text></g>"#,
            name = esc(&s.name),
            lx2 = lx + 24.0,
            lxc = lx + 12.0,
            lxt = lx + 30.0,
            lyt = ly + 4.0,
            n = s.points.len(),
        );
    }
    let note_y = TOP + 10.0 + 20.0 * series.len() as f64 + 8.0;
    let _ = write!(
        out,
        r##"<text x="{lx}" y="{note_y}" fill="#666" font-size="11">filled: reached</text><text x="{lx}" y="{note_y2}" fill="#666" font-size="11">hollow: missed</text></g>"##,
        note_y2 = note_y + 14.0
    );
    if series.is_empty() {
        let _ = write!(
            out,
            r##"<text class="empty" x="{cx}" y="{cy}" text-anchor="middle" fill="#666">no priced results yet</text>"##,
            cx = LEFT + pw / 2.0,
            cy = TOP + ph / 2.0,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A horizontal bar chart of the time to the tolerance, log scale with decade ticks, one row per method
/// in the order given; methods without a time get their note instead of a bar.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    const ROW: f64 = 26.0;
    const LABELS: f64 = 110.0;
    const PLOT: f64 = 480.0;
    const NOTES: f64 = 170.0;
    let axis = LogAxis::covering(bars.iter().filter_map(|b| b.time_s), (-6, 0));
    // Bars start one decade below the fastest, so the fastest still has a visible length.
    let axis = LogAxis {
        lo: axis.lo - 1,
        hi: axis.hi,
    };
    let width = LABELS + PLOT + NOTES;
    let plot_top = TOP;
    let plot_h = ROW * bars.len().max(1) as f64;
    let height = plot_top + plot_h + BOTTOM;
    let x = |v: f64| LABELS + axis.frac(v.max(TIME_FLOOR)) * PLOT;

    let mut out = String::new();
    header(&mut out, width, height, title);
    out.push_str(r#"<g class="x-ticks" text-anchor="middle">"#);
    for d in axis.ticks() {
        let px = x(10f64.powi(d));
        let _ = write!(
            out,
            r##"<g class="tick" data-decade="{d}"><line x1="{px:.1}" y1="{plot_top}" x2="{px:.1}" y2="{yb}" stroke="#ddd"/><text x="{px:.1}" y="{yl}">{label}</text></g>"##,
            yb = plot_top + plot_h,
            yl = plot_top + plot_h + 16.0,
            label = decade(d),
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r#"<text class="x-label" x="{cx}" y="{ly}" text-anchor="middle">time to the tolerance (s, log scale)</text>"#,
        cx = LABELS + PLOT / 2.0,
        ly = height - 14.0,
    );
    for (i, b) in bars.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let top = plot_top + ROW * i as f64;
        let mid = top + ROW / 2.0 + 4.0;
        let _ = write!(
            out,
            r#"<g class="bar" data-method="{name}"><text x="{lx}" y="{mid}" text-anchor="end">{name}</text>"#,
            name = esc(&b.name),
            lx = LABELS - 8.0,
        );
        match b.time_s {
            Some(t) => {
                let w = (x(t) - LABELS).max(1.0);
                let _ = write!(
                    out,
                    r#"<rect x="{LABELS}" y="{ry}" width="{w:.1}" height="{rh}" fill="{colour}"><title>{tip}</title></rect><text x="{tx:.1}" y="{mid}">{label}</text>"#,
                    ry = top + 4.0,
                    rh = ROW - 8.0,
                    tip = esc(&format!("{}: {} ({})", b.name, seconds(t), b.note)),
                    tx = LABELS + w + 6.0,
                    label = esc(&format!("{} · {}", seconds(t), b.note)),
                );
            }
            None => {
                let _ = write!(
                    out,
                    r##"<text class="note" x="{tx}" y="{mid}" fill="#666">{note}</text>"##,
                    tx = LABELS + 6.0,
                    note = esc(&b.note),
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(time_s: f64, relerr: f64, reached: bool) -> Point {
        Point {
            time_s,
            relerr,
            reached,
            label: "level 0 (N=8)".into(),
        }
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"))
    }

    fn with_class<'a>(doc: &'a roxmltree::Document<'a>, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .collect()
    }

    fn decades(doc: &roxmltree::Document<'_>, axis: &str) -> Vec<i32> {
        with_class(doc, axis)[0]
            .children()
            .filter_map(|n| n.attribute("data-decade"))
            .map(|d| d.parse().unwrap())
            .collect()
    }

    #[test]
    fn a_work_precision_diagram_has_one_group_per_method_and_one_circle_per_point() {
        let series = vec![
            Series {
                name: "cos".into(),
                points: vec![
                    point(2e-6, 3e-2, false),
                    point(4e-6, 2e-5, true),
                    point(9e-6, 1e-9, true),
                ],
            },
            Series {
                name: "fd <uniform> & co".into(),
                points: vec![point(1e-3, 5e-4, false), point(3e-2, 4e-6, true)],
            },
            Series {
                name: "closed-form".into(),
                points: vec![point(1e-6, 0.0, true)],
            },
        ];
        let svg = work_precision("1aI: work precision", 1e-4, &series);
        let doc = parse(&svg);
        let groups = with_class(&doc, "series");
        let summary: Vec<(&str, usize, usize)> = groups
            .iter()
            .map(|g| {
                (
                    g.attribute("data-method").unwrap(),
                    g.children().filter(|c| c.has_tag_name("circle")).count(),
                    g.children().filter(|c| c.has_tag_name("polyline")).count(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![("cos", 3, 1), ("fd <uniform> & co", 2, 1), ("closed-form", 1, 0)]
        );
        assert_eq!(with_class(&doc, "entry").len(), 3, "one legend entry per method");
        // Misses are hollow, hits filled with the series colour.
        let cos_fills: Vec<Option<&str>> = groups[0]
            .children()
            .filter(|c| c.has_tag_name("circle"))
            .map(|c| c.attribute("fill"))
            .collect();
        assert_eq!(cos_fills, vec![Some("white"), None, None]);
        // Decade ticks cover every point: times 1e-6…3e-2, errors down to the exact closed form's floor.
        assert_eq!(decades(&doc, "x-ticks"), (-6..=-1).collect::<Vec<_>>());
        // Errors from the floor (1e-16) to 3e-2: 15 decades, labelled every second one.
        assert_eq!(
            decades(&doc, "y-ticks"),
            (-16..=-1).step_by(2).collect::<Vec<_>>()
        );
        // The tolerance line sits at 1e-4 on the log relerr axis: halfway between the 1e-2 and 1e-6 ticks.
        let tol = &with_class(&doc, "tolerance")[0];
        assert_eq!(tol.attribute("data-tolerance"), Some("1e-4"));
        let tol_y: f64 = tol
            .first_child()
            .unwrap()
            .attribute("y1")
            .unwrap()
            .parse()
            .unwrap();
        let tick_y = |d: i32| -> f64 {
            with_class(&doc, "y-ticks")[0]
                .children()
                .find(|t| t.attribute("data-decade") == Some(&d.to_string()))
                .and_then(|t| t.first_child())
                .and_then(|l| l.attribute("y1"))
                .unwrap_or_else(|| panic!("no tick at 1e{d}"))
                .parse()
                .unwrap()
        };
        let (above, below) = (tick_y(-2), tick_y(-6));
        assert!(
            (tol_y - (above + below) / 2.0).abs() < 0.2,
            "{above} {tol_y} {below}"
        );
        // Every point carries a tooltip naming its method.
        let titles: Vec<_> = groups[1]
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .map(|n| n.text().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(titles.len(), 2);
        assert!(
            titles.iter().all(|t| t.starts_with("fd <uniform> & co: level 0")),
            "{titles:?}"
        );
    }

    #[test]
    fn an_empty_diagram_is_still_a_valid_document() {
        let svg = work_precision("nothing yet", 1e-4, &[]);
        let doc = parse(&svg);
        assert!(with_class(&doc, "series").is_empty());
        assert_eq!(with_class(&doc, "empty").len(), 1);
        assert_eq!(decades(&doc, "x-ticks"), (-6..=0).collect::<Vec<_>>());
    }

    #[test]
    fn a_bar_chart_draws_a_bar_per_timed_method_and_notes_the_others() {
        let bars_in = vec![
            Bar {
                name: "cos".into(),
                time_s: Some(5e-6),
                note: "level 3".into(),
            },
            Bar {
                name: "fd".into(),
                time_s: Some(2e-3),
                note: "level 5".into(),
            },
            Bar {
                name: "mc".into(),
                time_s: None,
                note: "missed (tier fail)".into(),
            },
        ];
        let svg = bars("1aI: time to 1e-4", &bars_in);
        let doc = parse(&svg);
        let groups = with_class(&doc, "bar");
        assert_eq!(groups.len(), 3);
        let widths: Vec<Option<f64>> = groups
            .iter()
            .map(|g| {
                g.children()
                    .find(|c| c.has_tag_name("rect"))
                    .map(|r| r.attribute("width").unwrap().parse().unwrap())
            })
            .collect();
        let (cos, fd) = (widths[0].unwrap(), widths[1].unwrap());
        assert!(widths[2].is_none(), "no bar for a miss");
        // Log scale: 2e-3 / 5e-6 is 2.6 decades; the axis starts a decade below the fastest (1e-7), so
        // the bars are 1.7 and 4.3 decades long.
        let per_decade = 480.0 / f64::from(-2 - -7);
        assert!((cos - (5e-6f64.log10() + 7.0) * per_decade).abs() < 0.2, "{cos}");
        assert!((fd - (2e-3f64.log10() + 7.0) * per_decade).abs() < 0.2, "{fd}");
        assert_eq!(with_class(&doc, "note").len(), 1);
    }
}
