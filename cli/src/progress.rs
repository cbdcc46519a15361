//! `benchop rank`'s progress: one line per method on standard error, fed by the in-process workers'
//! lifecycle events (the same events the monitor folds), so a method that takes seconds is visibly
//! working rather than a silent wait. Hidden when standard error is not a terminal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use protocol::{EventKind, EventSink};

/// One spinner line per method: `queued`, then `tuning and timing` with the elapsed time, then how it
/// ended.
pub struct MethodLines {
    /// The bars share the lines' drawing state (their `MultiProgress`) between them.
    bars: HashMap<String, ProgressBar>,
    /// Task id → method, learnt from `task_received`.
    tasks: Mutex<HashMap<Uuid, String>>,
}

impl MethodLines {
    /// Lines for `methods`, in that order, drawn on standard error (hidden when it is not a terminal).
    pub fn new<'a>(methods: impl IntoIterator<Item = &'a str>) -> Self {
        Self::with_target(methods, ProgressDrawTarget::stderr())
    }

    fn with_target<'a>(methods: impl IntoIterator<Item = &'a str>, target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let waiting = style("  {prefix:<12} {msg}");
        let bars = methods
            .into_iter()
            .map(|m| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(waiting.clone());
                bar.set_prefix(m.to_owned());
                bar.set_message("queued");
                (m.to_owned(), bar)
            })
            .collect();
        Self {
            bars,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, task_id: &Uuid) -> Option<&ProgressBar> {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.get(task_id).and_then(|m| self.bars.get(m))
    }

    /// The lines as they would be drawn now, for tests.
    #[cfg(test)]
    fn messages(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.bars.iter().map(|(m, b)| (m.clone(), b.message())).collect();
        v.sort();
        v
    }
}

/// Method ids are at most 11 characters (`closed-form`): a 12-column prefix aligns the lines.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}

impl EventSink for MethodLines {
    fn emit(&self, kind: EventKind) {
        match kind {
            EventKind::TaskReceived { task_id, method, .. } => {
                self.tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(task_id, method);
                if let Some(bar) = self.bar(&task_id) {
                    bar.set_style(style("{spinner} {prefix:<12} tuning and timing… {elapsed}"));
                    bar.reset_elapsed();
                    bar.set_message("tuning and timing");
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            }
            EventKind::TaskSucceeded {
                task_id, runtime_ms, ..
            } => {
                if let Some(bar) = self.bar(&task_id) {
                    bar.set_style(style("✓ {prefix:<12} {msg}"));
                    bar.finish_with_message(format!(
                        "done in {}",
                        duration(Duration::from_millis(runtime_ms))
                    ));
                }
            }
            EventKind::TaskFailed { task_id, reason, .. } => {
                if let Some(bar) = self.bar(&task_id) {
                    bar.set_style(style("✗ {prefix:<12} {msg}"));
                    bar.finish_with_message(format!("failed: {reason}"));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_line_follows_its_task_from_queued_to_done_or_failed() {
        let lines = MethodLines::with_target(["cos", "fd", "mc"], ProgressDrawTarget::hidden());
        let (cos, mc) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, method) in [(cos, "cos"), (mc, "mc")] {
            lines.emit(EventKind::TaskReceived {
                task_id: id,
                job_id: Uuid::nil(),
                method: method.into(),
                worker: "w".into(),
            });
        }
        lines.emit(EventKind::TaskSucceeded {
            task_id: cos,
            worker: "w".into(),
            runtime_ms: 2100,
        });
        lines.emit(EventKind::TaskFailed {
            task_id: mc,
            worker: "w".into(),
            reason: "time limit".into(),
        });
        // An unknown task changes nothing.
        lines.emit(EventKind::TaskSucceeded {
            task_id: Uuid::new_v4(),
            worker: "w".into(),
            runtime_ms: 1,
        });
        assert_eq!(
            lines.messages(),
            [
                ("cos".to_owned(), "done in 2.1 s".to_owned()),
                ("fd".to_owned(), "queued".to_owned()),
                ("mc".to_owned(), "failed: time limit".to_owned()),
            ]
        );
    }
}
