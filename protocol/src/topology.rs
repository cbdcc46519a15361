//! Broker topology: every exchange, queue and routing key benchop uses, as data.
//!
//! The services declare exactly this (see `amqp::declare_topology`), and `broker-config/definitions.json`
//! mirrors it for operators who pre-provision the broker.

/// Direct exchange the tasks are published to.
pub const TASKS_EXCHANGE: &str = "benchop.tasks";
/// Durable quorum queue holding tasks; workers consume it.
pub const TASKS_QUEUE: &str = "benchop.tasks";
/// Routing key of tasks on [`TASKS_EXCHANGE`].
pub const TASKS_ROUTING_KEY: &str = "task";
/// Direct exchange results are published to.
pub const RESULTS_EXCHANGE: &str = "benchop.results";
/// Durable quorum queue holding results; baas consumes it.
pub const RESULTS_QUEUE: &str = "benchop.results";
/// Routing key of results on [`RESULTS_EXCHANGE`].
pub const RESULTS_ROUTING_KEY: &str = "result";
/// Topic exchange for lifecycle events (`task.succeeded`, `worker.heartbeat`, …).
pub const EVENTS_EXCHANGE: &str = "benchop.events";
/// Fanout exchange for [`Control`](crate::control::Control) commands; every worker binds its own exclusive,
/// auto-delete, server-named queue to it.
pub const CONTROL_EXCHANGE: &str = "benchop.control";
/// Fanout exchange that rejected and over-delivered tasks are dead-lettered to.
pub const DEAD_EXCHANGE: &str = "benchop.dead";
/// Queue collecting dead-lettered tasks for inspection and replay (the monitor shows it; nobody drains it).
pub const DEAD_QUEUE: &str = "benchop.dead";
/// Second queue on [`DEAD_EXCHANGE`]: baas consumes it to record a dead-lettered task as failed in its job.
pub const DEAD_NOTIFY_QUEUE: &str = "benchop.dead.baas";
/// Prefix of each monitor's own events queue, `benchop.monitor.<name>`: durable and bound to every event,
/// so events published while its monitor reconnects (or restarts) wait for it. Bounded: at most
/// [`MONITOR_QUEUE_MAX_LENGTH`] events (oldest dropped) and deleted after [`MONITOR_QUEUE_EXPIRES_MS`]
/// without a consumer.
pub const MONITOR_QUEUE_PREFIX: &str = "benchop.monitor.";
/// Most events a monitor queue holds while its monitor is away (the oldest are dropped first).
pub const MONITOR_QUEUE_MAX_LENGTH: i64 = 100_000;
/// A monitor queue unused for this long is deleted by the broker (a monitor gone for good).
pub const MONITOR_QUEUE_EXPIRES_MS: i64 = 3_600_000;

/// The events queue of the monitor called `name`.
///
/// ```
/// assert_eq!(protocol::topology::monitor_queue("default"), "benchop.monitor.default");
/// ```
pub fn monitor_queue(name: &str) -> String {
    format!("{MONITOR_QUEUE_PREFIX}{name}")
}

/// How often a task may be delivered before the quorum queue dead-letters it (poison messages).
pub const TASK_DELIVERY_LIMIT: i64 = 5;

/// Kind of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routes by exact routing key.
    Direct,
    /// Routes by routing-key pattern.
    Topic,
    /// Routes to every bound queue.
    Fanout,
}

/// One exchange to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeSpec {
    /// Name.
    pub name: &'static str,
    /// Kind.
    pub kind: ExchangeKind,
}

/// A queue argument value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgValue {
    /// A string argument.
    Str(&'static str),
    /// An integer argument.
    Int(i64),
}

/// One durable queue to declare, with its arguments and its binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Name.
    pub name: &'static str,
    /// `x-…` arguments.
    pub arguments: Vec<(&'static str, ArgValue)>,
    /// Exchange and routing key it is bound with.
    pub binding: (&'static str, &'static str),
}

/// The exchanges, in declaration order.
pub fn exchanges() -> Vec<ExchangeSpec> {
    vec![
        ExchangeSpec {
            name: TASKS_EXCHANGE,
            kind: ExchangeKind::Direct,
        },
        ExchangeSpec {
            name: RESULTS_EXCHANGE,
            kind: ExchangeKind::Direct,
        },
        ExchangeSpec {
            name: EVENTS_EXCHANGE,
            kind: ExchangeKind::Topic,
        },
        ExchangeSpec {
            name: DEAD_EXCHANGE,
            kind: ExchangeKind::Fanout,
        },
        ExchangeSpec {
            name: CONTROL_EXCHANGE,
            kind: ExchangeKind::Fanout,
        },
    ]
}

/// The durable queues, in declaration order (the dead-letter queue first, so tasks can reference it).
pub fn queues() -> Vec<QueueSpec> {
    vec![
        QueueSpec {
            name: DEAD_QUEUE,
            arguments: vec![("x-queue-type", ArgValue::Str("quorum"))],
            binding: (DEAD_EXCHANGE, ""),
        },
        QueueSpec {
            name: DEAD_NOTIFY_QUEUE,
            arguments: vec![("x-queue-type", ArgValue::Str("quorum"))],
            binding: (DEAD_EXCHANGE, ""),
        },
        QueueSpec {
            name: TASKS_QUEUE,
            arguments: vec![
                ("x-queue-type", ArgValue::Str("quorum")),
                ("x-delivery-limit", ArgValue::Int(TASK_DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", ArgValue::Str(DEAD_EXCHANGE)),
            ],
            binding: (TASKS_EXCHANGE, TASKS_ROUTING_KEY),
        },
        QueueSpec {
            name: RESULTS_QUEUE,
            arguments: vec![("x-queue-type", ArgValue::Str("quorum"))],
            binding: (RESULTS_EXCHANGE, RESULTS_ROUTING_KEY),
        },
    ]
}
