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
    /// The broker URL list cannot be used as written (not retried).
    #[error("AMQP_URL: {0}")]
    Config(String),
    /// The broker's TLS certificate is not trusted (not retried: waiting does not fix it).
    #[error(
        "the TLS certificate of the broker at {url} is not trusted ({reason}); name the CA that signed it \
         with ?cacertfile=/path/ca.pem on the amqps:// URL, and check the host name matches the certificate"
    )]
    Untrusted {
        /// The URL with the password hidden.
        url: String,
        /// What the TLS library said.
        reason: String,
    },
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

/// `amqp://user:secret@host/vhost` with the password replaced by `***`, for logs and errors; each URL of
/// a comma-separated list likewise.
///
/// ```
/// use protocol::amqp::redact;
/// assert_eq!(redact("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
/// assert_eq!(redact("amqp://a:b@n1/%2f,amqps://a:b@n2/%2f"), "amqp://a:***@n1/%2f,amqps://a:***@n2/%2f");
/// ```
pub fn redact(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
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

/// One broker of an `AMQP_URL` list: the URL the client library sees and the CA to trust for it.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_one(&self.url))
            .field("custom_ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl Endpoint {
    /// The URL without benchop's own query parameters (what lapin connects to).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection is TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("amqps://")
    }
}

/// Parse `AMQP_URL`: one or more broker URLs separated by commas, tried in turn on every (re)connect
/// (the nodes of a cluster). `amqps://` URLs are verified against Mozilla's roots and, when the URL
/// carries `?cacertfile=/path/ca.pem` (the name RabbitMQ's own URI query parameters use), against that
/// CA; the file is read here, so a missing or empty one is reported at start.
///
/// ```
/// let eps = protocol::amqp::endpoints("amqp://g:g@n1:5672/%2f, amqp://g:g@n2:5672/%2f?heartbeat=10").unwrap();
/// assert_eq!(eps.len(), 2);
/// assert_eq!(eps[1].url(), "amqp://g:g@n2:5672/%2f?heartbeat=10");
/// assert!(protocol::amqp::endpoints(" , ").is_err());
/// assert!(protocol::amqp::endpoints("amqp://n1/%2f?cacertfile=/etc/ca.pem").is_err()); // TLS needs amqps://
/// ```
pub fn endpoints(spec: &str) -> Result<Vec<Endpoint>, AmqpError> {
    let mut out = Vec::new();
    for raw in spec.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let shown = redact_one(raw);
        if !(raw.starts_with("amqp://") || raw.starts_with("amqps://")) {
            return Err(AmqpError::Config(format!(
                "`{shown}` is not an amqp:// or amqps:// URL"
            )));
        }
        let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
        let mut kept = Vec::new();
        let mut ca_file = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cacertfile", path)) => ca_file = Some(path.to_owned()),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let ca_pem = match ca_file {
            None => None,
            Some(_) if !raw.starts_with("amqps://") => {
                return Err(AmqpError::Config(format!(
                    "`{shown}` names a cacertfile but is not amqps://; certificates are only checked over TLS"
                )));
            }
            Some(path) => {
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| AmqpError::Config(format!("cannot read cacertfile {path}: {e}")))?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(AmqpError::Config(format!(
                        "cacertfile {path} holds no PEM certificate"
                    )));
                }
                Some(pem)
            }
        };
        out.push(Endpoint { url, ca_pem });
    }
    if out.is_empty() {
        return Err(AmqpError::Config("no broker URL given".to_owned()));
    }
    Ok(out)
}

/// How long one connection attempt to one broker may take before the next broker is tried.
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to one endpoint, once.
pub async fn connect_endpoint(endpoint: &Endpoint, connection_name: &str) -> Result<Connection, AmqpError> {
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: endpoint.ca_pem.clone(),
    };
    let builder = lapin::ConnectionBuilder::new()?
        .with_uri_str(endpoint.url.clone())
        .with_properties(props)
        .with_tls_config(tls);
    match tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, builder.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            let reason = e.to_string();
            // rustls reports "invalid peer certificate: UnknownIssuer / NotValidForName / Expired …".
            if endpoint.is_tls() && reason.contains("certificate") {
                Err(AmqpError::Untrusted {
                    url: redact_one(&endpoint.url),
                    reason,
                })
            } else {
                Err(e.into())
            }
        }
        Err(_) => Err(AmqpError::Stalled("connecting", CONNECT_ATTEMPT_TIMEOUT)),
    }
}

/// Connect to the first reachable broker of `url` (a comma-separated list, see [`endpoints`]), trying
/// each in turn, then again with exponential backoff (100 ms doubling to 5 s) for at most `max_wait`.
/// A URL that cannot be used or a broker certificate that is not trusted fails at once.
pub async fn connect(url: &str, connection_name: &str, max_wait: Duration) -> Result<Connection, AmqpError> {
    let endpoints = endpoints(url)?;
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let mut last = String::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            match connect_endpoint(endpoint, connection_name).await {
                Ok(conn) => {
                    if i > 0 {
                        tracing::info!(broker = %redact_one(endpoint.url()), "connected to a fallback broker");
                    }
                    return Ok(conn);
                }
                Err(e @ AmqpError::Untrusted { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(broker = %redact_one(endpoint.url()), error = %e, "broker unreachable");
                    last = e.to_string();
                }
            }
        }
        let waited = start.elapsed();
        if waited + delay > max_wait {
            return Err(AmqpError::Unreachable {
                url: redact(url),
                waited,
                last,
            });
        }
        tracing::warn!(url = %redact(url), error = %last, retry_in = ?delay, "broker unreachable");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
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

/// How often an idle event publisher checks that its channel is still open.
const IDLE_CHECK: Duration = Duration::from_secs(2);

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
            // While idle, notice a dead connection (a broker node that died) and reconnect before the
            // next event needs it.
            let first = loop {
                tokio::select! {
                    event = rx.recv() => break event,
                    () = tokio::time::sleep(IDLE_CHECK) => {
                        if !channel.status().connected() {
                            return Err(AmqpError::Stalled("the idle events channel", IDLE_CHECK));
                        }
                    }
                }
            };
            let Some(first) = first else {
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
