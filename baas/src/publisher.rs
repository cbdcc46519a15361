//! Publishing tasks: to RabbitMQ with publisher confirms, or to the in-process queue of standalone mode.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};

use protocol::TaskMessage;
use protocol::amqp::{self, AmqpError};
use protocol::control::Control;
use protocol::topology::{TASKS_EXCHANGE, TASKS_ROUTING_KEY};

/// Publishing failed; the tasks stay unpublished in the store and are retried.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker is unreachable or refused.
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    /// The pool could not produce a connection.
    #[error("no broker connection: {0}")]
    Pool(String),
    /// The in-process queue is closed.
    #[error("the in-process queue is closed")]
    Closed,
}

/// Where baas sends tasks. Returns once every task is safely queued (confirmed by the broker).
#[async_trait]
pub trait TaskPublisher: Send + Sync + 'static {
    /// Publish all tasks; `Ok` means every one is durably queued.
    async fn publish(&self, tasks: &[TaskMessage]) -> Result<(), PublishError>;

    /// Broadcast a control command to the workers (revocation). Best effort: a worker that misses it
    /// runs the task anyway, and its result is then ignored as a duplicate.
    async fn control(&self, _command: &Control) -> Result<(), PublishError> {
        Ok(())
    }
}

/// A deadpool manager of broker connections made by [`amqp::connect`]: it tries every broker of the
/// `AMQP_URL` list in turn and verifies TLS against the URL's `cacertfile`, which deadpool-lapin's
/// manager (one URL, default TLS settings) cannot.
pub struct BrokerManager {
    url: String,
    connection_name: &'static str,
}

impl deadpool::managed::Manager for BrokerManager {
    type Type = lapin::Connection;
    type Error = AmqpError;

    async fn create(&self) -> Result<lapin::Connection, AmqpError> {
        // One pass over the brokers: the pool's caller retries (the republisher, the next request).
        amqp::connect(&self.url, self.connection_name, Duration::ZERO).await
    }

    async fn recycle(
        &self,
        conn: &mut lapin::Connection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<AmqpError> {
        if conn.status().connected() {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(
                "the broker connection is closed",
            ))
        }
    }
}

type BrokerPool = deadpool::managed::Pool<BrokerManager>;
type PooledConnection = deadpool::managed::Object<BrokerManager>;

/// Publishes to RabbitMQ over a pool of broker connections ([`BrokerManager`]), one confirm channel
/// reused across batches and re-opened (on whichever broker answers) after a failure.
pub struct AmqpPublisher {
    pool: BrokerPool,
    channel: Mutex<Option<(PooledConnection, lapin::Channel)>>,
}

impl AmqpPublisher {
    /// Connect to `url` (waiting up to `max_wait` for the broker), declare the topology, keep a pool.
    pub async fn connect(url: &str, max_wait: Duration) -> Result<Self, PublishError> {
        // Fail fast and loudly when the broker is not there at start-up, with the how-to-start hint.
        let probe = amqp::connect(url, "baas-setup", max_wait).await?;
        let channel = probe.create_channel().await.map_err(AmqpError::from)?;
        amqp::declare_topology(&channel).await?;
        let _ = probe.close(200, "setup done".into()).await;
        let manager = BrokerManager {
            url: url.to_owned(),
            connection_name: "baas-publisher",
        };
        let pool = BrokerPool::builder(manager)
            .max_size(4)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| PublishError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            channel: Mutex::new(None),
        })
    }
}

#[async_trait]
impl TaskPublisher for AmqpPublisher {
    async fn publish(&self, tasks: &[TaskMessage]) -> Result<(), PublishError> {
        // The lock only guards getting the channel: concurrent requests publish on it at once and await
        // their own confirms (holding it across the confirm wait allowed one job per broker round trip).
        let channel = {
            let mut guard = self.channel.lock().await;
            self.usable_channel(&mut guard).await?
        };
        let messages: Vec<(String, Vec<u8>)> = tasks
            .iter()
            .map(|t| (t.task_id.to_string(), t.encode()))
            .collect();
        let sent = amqp::publish_confirmed(&channel, TASKS_EXCHANGE, TASKS_ROUTING_KEY, messages).await;
        if sent.is_err() {
            let mut guard = self.channel.lock().await;
            // Drop it only if nobody replaced it meanwhile.
            if guard.as_ref().is_some_and(|(_, ch)| ch.id() == channel.id()) {
                *guard = None;
            }
        }
        Ok(sent?)
    }

    async fn control(&self, command: &Control) -> Result<(), PublishError> {
        let mut guard = self.channel.lock().await;
        let channel = self.usable_channel(&mut guard).await?;
        let sent = amqp::publish_control(&channel, command).await;
        if sent.is_err() {
            *guard = None;
        }
        Ok(sent?)
    }
}

impl AmqpPublisher {
    /// The confirm channel, (re)opened from the pool when it is closed.
    async fn usable_channel(
        &self,
        guard: &mut Option<(PooledConnection, lapin::Channel)>,
    ) -> Result<lapin::Channel, PublishError> {
        if let Some((_, ch)) = guard.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| PublishError::Pool(e.to_string()))?;
        let channel = amqp::confirm_channel(&conn).await?;
        *guard = Some((conn, channel.clone()));
        Ok(channel)
    }
}

/// Publishes to the in-process queue of standalone mode.
pub struct LocalPublisher {
    tx: mpsc::Sender<TaskMessage>,
}

impl LocalPublisher {
    /// Publish into `tx`.
    pub fn new(tx: mpsc::Sender<TaskMessage>) -> Self {
        Self { tx }
    }
}

#[async_trait]
impl TaskPublisher for LocalPublisher {
    async fn publish(&self, tasks: &[TaskMessage]) -> Result<(), PublishError> {
        for t in tasks {
            self.tx.send(t.clone()).await.map_err(|_| PublishError::Closed)?;
        }
        Ok(())
    }
}
