//! Standalone mode: baas and a pool of workers in one process, joined by an in-process queue instead of
//! RabbitMQ. The job, task and result code paths are the distributed ones.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use baas::{AppState, LocalPublisher, Store};
use protocol::EventSink;

/// Capacity of the in-process task queue.
const QUEUE_CAPACITY: usize = 10_000;

/// Start `workers` in-process workers and the result intake; returns the state to submit jobs to.
pub fn start(
    store: Store,
    workers: usize,
    events: Arc<dyn EventSink>,
    token: &CancellationToken,
) -> AppState {
    let (task_tx, task_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (result_tx, mut result_rx) = mpsc::channel(1024);
    let state = AppState::new(store, Arc::new(LocalPublisher::new(task_tx)), Arc::clone(&events));
    let queue = worker::LocalQueue {
        tasks: Arc::new(Mutex::new(task_rx)),
        results: result_tx,
    };
    tokio::spawn(worker::run_local(queue, workers, events, token.clone()));
    let intake = state.clone();
    tokio::spawn(async move {
        while let Some(result) = result_rx.recv().await {
            if let Err(e) = baas::jobs::ingest(&intake, result).await {
                tracing::error!(error = %e, "result not recorded");
            }
        }
    });
    state
}
