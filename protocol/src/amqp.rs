//! The lapin glue shared by the services: connect with backoff, declare the topology, publish with
//! publisher confirms in a bounded window.

use std::collections::VecDeque;
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};

use crate::topology::{self, ArgValue};

/// Publisher confirms awaited at once at most; more in flight wait for the oldest.
pub const CONFIRM_WINDOW: usize = 512;

/// Errors of the AMQP glue.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The client library failed (connection, channel, protocol).
    #[error("AMQP: {0}")]
    Lapin(#[from] lapin::Error),
    /// The broker refused a message (negative confirm).
    #[error("the broker refused {0} message(s) (negative publisher confirm)")]
    Nacked(usize),
    /// A broker operation did not complete in time (a connection that died without telling the client).
    #[error("AMQP: {0} did not complete within {1:?}; the connection is presumed dead")]
    Stalled(&'static str, Duration),
    /// Could not reach the broker in time.
    #[error(
        "cannot reach RabbitMQ at {url} after {waited:?}: {last}. Start it with `rabbitmq-server -detached` \
         (or `systemctl start rabbitmq-server`), or point AMQP_URL at a running broker"
    )]
    Unreachable {
        /// The URL with the password hidden.
        url: String,
        /// How long we tried.
        waited: Duration,
        /// The last error.
        last: String,
    },
}

/// `amqp://user:secret@host/vhost` with the password replaced by `***`, for logs and errors.
///
/// ```
/// assert_eq!(protocol::amqp::redact("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Connect, retrying with exponential backoff (100 ms doubling to 5 s) for at most `max_wait`.
pub async fn connect(url: &str, connection_name: &str, max_wait: Duration) -> Result<Connection, AmqpError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let props = ConnectionProperties::default().with_connection_name(connection_name.into());
        match Connection::connect(url, props).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                let waited = start.elapsed();
                if waited + delay > max_wait {
                    return Err(AmqpError::Unreachable {
                        url: redact(url),
                        waited,
                        last: e.to_string(),
                    });
                }
                tracing::warn!(url = %redact(url), error = %e, retry_in = ?delay, "broker unreachable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn field_table(args: &[(&'static str, ArgValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in args {
        let value = match *v {
            ArgValue::Str(s) => AMQPValue::LongString(LongString::from(s)),
            ArgValue::Int(i) => AMQPValue::LongLongInt(i),
        };
        table.insert((*k).into(), value);
    }
    table
}

/// Declare every exchange and durable queue of [`topology`], with their bindings. Idempotent.
pub async fn declare_topology(channel: &Channel) -> Result<(), AmqpError> {
    for ex in topology::exchanges() {
        let kind = match ex.kind {
            topology::ExchangeKind::Direct => ExchangeKind::Direct,
            topology::ExchangeKind::Topic => ExchangeKind::Topic,
            topology::ExchangeKind::Fanout => ExchangeKind::Fanout,
        };
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(ex.name.into(), kind, options, FieldTable::default())
            .await?;
    }
    for q in topology::queues() {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(q.name.into(), options, field_table(&q.arguments))
            .await?;
        let (exchange, key) = q.binding;
        channel
            .queue_bind(
                q.name.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Open a channel with publisher confirms on.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

/// Properties of every benchop message: persistent JSON with an id.
pub fn persistent_json(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
}

/// Publish `messages` (id, body) persistently on a confirm channel and wait until the broker confirmed all.
///
/// Confirms are awaited in a bounded window of [`CONFIRM_WINDOW`]: publishing never blocks on one
/// confirm at a time, and memory stays bounded for big batches.
pub async fn publish_confirmed<I>(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    messages: I,
) -> Result<(), AmqpError>
where
    I: IntoIterator<Item = (String, Vec<u8>)>,
{
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::new();
    let mut nacked = 0;
    for (id, body) in messages {
        if pending.len() >= CONFIRM_WINDOW
            && let Some(oldest) = pending.pop_front()
        {
            nacked += usize::from(!is_ack(oldest.await?));
        }
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                persistent_json(&id),
            )
            .await?;
        pending.push_back(confirm);
    }
    for confirm in pending {
        nacked += usize::from(!is_ack(confirm.await?));
    }
    if nacked == 0 {
        Ok(())
    } else {
        Err(AmqpError::Nacked(nacked))
    }
}

fn is_ack(c: Confirmation) -> bool {
    // `NotRequested` means the channel is not in confirm mode: treat as a programming error, not a success.
    c.is_ack()
}

/// Capacity of the in-memory event buffer in front of the broker; events beyond it are dropped.
pub const EVENT_BUFFER: usize = 4096;

/// Most events in one batched message.
pub const MAX_EVENT_BATCH: usize = 256;

/// How long the event publisher waits after an event for more to batch with it.
pub const EVENT_LINGER: Duration = Duration::from_millis(1);

/// An [`EventSink`](crate::EventSink) that publishes to the events exchange from a background task.
///
/// Events are best-effort telemetry: persistent is not needed and no confirms are awaited. When the
/// buffer is full (broker slow or down) events are dropped and counted, never blocking the caller.
#[derive(Debug, Clone)]
pub struct AmqpEvents {
    tx: tokio::sync::mpsc::Sender<crate::Event>,
}

impl AmqpEvents {
    /// Start publishing on `channel`; the task ends when every clone of the sink is dropped.
    ///
    /// Events that queue up while one is being published go out together: consecutive events of one
    /// family (`job`, `task`, `worker`) become one message whose body is a JSON array, with routing key
    /// `<family>.batch` (see [`Event::decode_batch`](crate::Event::decode_batch)); the publisher lingers
    /// [`EVENT_LINGER`] after an event to collect more. A lone event is published as before, under its own
    /// routing key.
    pub fn spawn(channel: Channel) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::Event>(EVENT_BUFFER);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_EVENT_BATCH);
            while publish_events(&channel, &mut rx, &mut batch).await.is_err() {
                // The channel is gone for good: keep draining so emitters never notice.
                tracing::debug!("events channel closed; dropping events");
                batch.clear();
            }
        });
        Self { tx }
    }

    /// Like [`AmqpEvents::spawn`], but owning its connection to `url`: when the broker goes away it
    /// reconnects with backoff, and the events emitted meanwhile (up to [`EVENT_BUFFER`]) go out after.
    pub fn connect(url: String, connection_name: &'static str) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::Event>(EVENT_BUFFER);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_EVENT_BATCH);
            loop {
                let channel = match connect(&url, connection_name, Duration::from_secs(3600)).await {
                    Ok(conn) => match conn.create_channel().await {
                        Ok(channel) => Some((conn, channel)),
                        Err(e) => {
                            tracing::debug!(error = %e, "events channel not opened");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "events connection failed");
                        None
                    }
                };
                if let Some((_conn, channel)) = channel {
                    match publish_events(&channel, &mut rx, &mut batch).await {
                        Ok(()) => return,
                        Err(e) => tracing::debug!(error = %e, "events channel lost; reconnecting"),
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self { tx }
    }
}

/// Publish events from `rx` on `channel` in batches until every sender is gone (`Ok`) or a publish
/// fails (`Err`, with the unsent events left in `batch` for the next channel).
async fn publish_events(
    channel: &Channel,
    rx: &mut tokio::sync::mpsc::Receiver<crate::Event>,
    batch: &mut Vec<crate::Event>,
) -> Result<(), AmqpError> {
    loop {
        if batch.is_empty() {
            let Some(first) = rx.recv().await else {
                return Ok(());
            };
            batch.push(first);
            // Linger a moment so that under load one message carries many events (telemetry can wait a
            // millisecond; the task path never waits for it).
            tokio::time::sleep(EVENT_LINGER).await;
        }
        while batch.len() < MAX_EVENT_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let mut sent = 0;
        for group in batch.chunk_by(|a, b| a.kind.family() == b.kind.family()) {
            let (key, body) = match group {
                [one] => (one.kind.routing_key().to_owned(), one.encode()),
                _ => (
                    format!("{}.batch", group[0].kind.family()),
                    crate::Event::encode_batch(group),
                ),
            };
            let props = BasicProperties::default().with_content_type("application/json".into());
            if let Err(e) = channel
                .basic_publish(
                    topology::EVENTS_EXCHANGE.into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
            {
                batch.drain(..sent);
                return Err(e.into());
            }
            sent += group.len();
        }
        batch.clear();
    }
}

impl crate::EventSink for AmqpEvents {
    fn emit(&self, kind: crate::EventKind) {
        let _ = self.tx.try_send(crate::Event::now(kind));
    }
}

/// Publish one [`Control`](crate::control::Control) command on the control exchange and wait for the
/// broker's confirm when `channel` is in confirm mode. Not persistent: a command matters only to the
/// workers connected now (each has its own auto-delete queue).
pub async fn publish_control(channel: &Channel, control: &crate::control::Control) -> Result<(), AmqpError> {
    let props = BasicProperties::default().with_content_type("application/json".into());
    let confirm = channel
        .basic_publish(
            topology::CONTROL_EXCHANGE.into(),
            "".into(),
            BasicPublishOptions::default(),
            &control.encode(),
            props,
        )
        .await?;
    match confirm.await? {
        Confirmation::Nack(_) => Err(AmqpError::Nacked(1)),
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
    }
}
