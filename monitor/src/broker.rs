//! What the broker says about benchop's queues: depth, consumers, rates, the age of the oldest message,
//! and the dead-letter queue's contents.
//!
//! Read from the RabbitMQ management HTTP API when it answers; otherwise from AMQP itself (a passive
//! `queue.declare` gives ready messages and consumers, a `basic.get` without ack on a channel that is then
//! closed peeks at the dead letters and puts them back). The tasks queue is never peeked: every requeue
//! counts against its delivery limit.

use std::str::FromStr;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use serde_json::Value;

use protocol::topology;

/// Dead letters shown at most.
pub const DEAD_PEEK: usize = 50;

/// One queue's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Messages ready for delivery.
    pub ready: u64,
    /// Delivered, not yet acked (`null` without the management API).
    pub unacked: Option<u64>,
    /// Consumers.
    pub consumers: u64,
    /// Messages published per second (management API only).
    pub publish_rate: Option<f64>,
    /// Messages delivered per second (management API only).
    pub deliver_rate: Option<f64>,
    /// Age of the oldest message, ms: from its timestamp, its `x-death` time, or (tasks) the oldest job
    /// with tasks not yet taken.
    pub oldest_age_ms: Option<u64>,
    /// `management` or `amqp`.
    pub source: String,
}

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Task id (from the message id or the body).
    pub task_id: Option<String>,
    /// Job id (from the body).
    pub job_id: Option<String>,
    /// Method (from the body).
    pub method: Option<String>,
    /// `x-death` reason (`rejected`, `delivery_limit`, …).
    pub reason: Option<String>,
    /// Queue it died in.
    pub queue: Option<String>,
    /// When it was dead-lettered, Unix ms.
    pub died_ms: Option<u64>,
    /// The body, shortened.
    pub body: String,
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct Broker {
    amqp_url: String,
    vhost: String,
    management: Option<(String, String, String)>,
    http: reqwest::Client,
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Broker {
    /// From the AMQP URL and the management API base (`None`: `http://<amqp host>:15672` with the
    /// AMQP credentials; `Some("")` or `"off"`: AMQP only).
    pub fn new(amqp_url: &str, management_url: Option<&str>) -> Self {
        // The management API of the first broker of the list (a cluster's nodes share one view).
        let parsed = protocol::amqp::endpoints(amqp_url)
            .ok()
            .and_then(|eps| lapin::uri::AMQPUri::from_str(eps[0].url()).ok());
        let vhost = parsed
            .as_ref()
            .map_or_else(|| "/".to_owned(), |u| u.vhost.clone());
        let management = match (management_url, parsed.as_ref()) {
            (Some("" | "off"), _) => None,
            (Some(url), p) => {
                let (user, pass) = p.map_or_else(
                    || ("guest".to_owned(), "guest".to_owned()),
                    |u| {
                        (
                            u.authority.userinfo.username.clone(),
                            u.authority.userinfo.password.clone(),
                        )
                    },
                );
                Some((url.trim_end_matches('/').to_owned(), user, pass))
            }
            (None, Some(u)) => Some((
                format!("http://{}:15672", u.authority.host),
                u.authority.userinfo.username.clone(),
                u.authority.userinfo.password.clone(),
            )),
            (None, None) => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            amqp_url: amqp_url.to_owned(),
            vhost,
            management,
            http,
        }
    }

    async fn mgmt_get(&self, path: &str) -> Option<Value> {
        let (base, user, pass) = self.management.as_ref()?;
        let r = self
            .http
            .get(format!("{base}/api/{path}"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// The numbers of benchop's durable queues; `oldest_task_ms` estimates the tasks queue's oldest age
    /// when the broker cannot tell.
    pub async fn queues(&self, oldest_task_ms: Option<u64>) -> Vec<QueueStats> {
        let names: Vec<&str> = topology::queues().iter().map(|q| q.name).collect();
        let now = protocol::task::now_ms();
        let mut stats = match self.mgmt_get(&format!("queues/{}", pct(&self.vhost))).await {
            Some(Value::Array(list)) => names
                .iter()
                .filter_map(|n| list.iter().find(|q| q["name"] == *n))
                .map(|q| QueueStats {
                    name: q["name"].as_str().unwrap_or_default().to_owned(),
                    ready: q["messages_ready"].as_u64().unwrap_or(0),
                    unacked: q["messages_unacknowledged"].as_u64(),
                    consumers: q["consumers"].as_u64().unwrap_or(0),
                    publish_rate: q["message_stats"]["publish_details"]["rate"].as_f64(),
                    deliver_rate: q["message_stats"]["deliver_get_details"]["rate"].as_f64(),
                    oldest_age_ms: q["head_message_timestamp"]
                        .as_u64()
                        .map(|s| now.saturating_sub(s * 1000)),
                    source: "management".to_owned(),
                })
                .collect(),
            _ => self.passive(&names).await,
        };
        let dead_age = if stats
            .iter()
            .any(|q| q.name == topology::DEAD_QUEUE && q.ready > 0)
        {
            self.dead_letters(1).await.first().and_then(|d| d.died_ms)
        } else {
            None
        };
        for q in &mut stats {
            if q.oldest_age_ms.is_none() && q.ready > 0 {
                q.oldest_age_ms = if q.name == topology::TASKS_QUEUE {
                    oldest_task_ms.map(|t| now.saturating_sub(t))
                } else if q.name == topology::DEAD_QUEUE {
                    dead_age.map(|t| now.saturating_sub(t))
                } else {
                    None
                };
            }
        }
        stats
    }

    async fn passive(&self, names: &[&str]) -> Vec<QueueStats> {
        let Ok(conn) =
            protocol::amqp::connect(&self.amqp_url, "monitor-queues", Duration::from_secs(2)).await
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in names {
            // A passive declare that fails closes its channel: one channel per queue.
            let Ok(ch) = conn.create_channel().await else {
                break;
            };
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            if let Ok(q) = ch
                .queue_declare((*name).into(), options, FieldTable::default())
                .await
            {
                out.push(QueueStats {
                    name: (*name).to_owned(),
                    ready: u64::from(q.message_count()),
                    consumers: u64::from(q.consumer_count()),
                    source: "amqp".to_owned(),
                    ..QueueStats::default()
                });
                let _ = ch.close(200, "".into()).await;
            }
        }
        let _ = conn.close(200, "".into()).await;
        out
    }

    /// Up to `max` messages at the head of the dead-letter queue, left in place.
    pub async fn dead_letters(&self, max: usize) -> Vec<DeadLetter> {
        if let Some((base, user, pass)) = &self.management {
            let url = format!(
                "{base}/api/queues/{}/{}/get",
                pct(&self.vhost),
                pct(topology::DEAD_QUEUE)
            );
            let body = serde_json::json!({"count": max, "ackmode": "ack_requeue_true", "encoding": "auto",
                                          "truncate": 4096});
            let sent = self
                .http
                .post(url)
                .basic_auth(user, Some(pass))
                .json(&body)
                .send()
                .await;
            if let Ok(r) = sent
                && r.status().is_success()
                && let Ok(Value::Array(list)) = r.json::<Value>().await
            {
                return list.iter().map(dead_from_management).collect();
            }
        }
        self.dead_letters_amqp(max).await
    }

    async fn dead_letters_amqp(&self, max: usize) -> Vec<DeadLetter> {
        let Ok(conn) = protocol::amqp::connect(&self.amqp_url, "monitor-dead", Duration::from_secs(2)).await
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Ok(ch) = conn.create_channel().await {
            while out.len() < max {
                let got = ch
                    .basic_get(topology::DEAD_QUEUE.into(), BasicGetOptions { no_ack: false })
                    .await;
                let Ok(Some(msg)) = got else { break };
                let d = &msg.delivery;
                let headers = d.properties.headers().clone().unwrap_or_default();
                let (reason, queue, died_ms) = x_death(&headers);
                let body = String::from_utf8_lossy(&d.data).into_owned();
                out.push(dead_letter(
                    d.properties.message_id().as_ref().map(|s| s.to_string()),
                    reason,
                    queue,
                    died_ms,
                    body,
                ));
            }
            // Closing the channel without acks puts every peeked message back.
            let _ = ch.close(200, "".into()).await;
        }
        let _ = conn.close(200, "".into()).await;
        out
    }
}

fn x_death(headers: &FieldTable) -> (Option<String>, Option<String>, Option<u64>) {
    let first = headers
        .inner()
        .iter()
        .find(|(k, _)| k.as_str() == "x-death")
        .and_then(|(_, v)| match v {
            AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
            _ => None,
        });
    let Some(AMQPValue::FieldTable(t)) = first else {
        return (None, None, None);
    };
    let get = |k: &str| {
        t.inner()
            .iter()
            .find(|(n, _)| n.as_str() == k)
            .map(|(_, v)| v.clone())
    };
    let text = |v: Option<AMQPValue>| match v {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    };
    let time = match get("time") {
        Some(AMQPValue::Timestamp(s)) => Some(s * 1000),
        _ => None,
    };
    (text(get("reason")), text(get("queue")), time)
}

fn dead_letter(
    message_id: Option<String>,
    reason: Option<String>,
    queue: Option<String>,
    died_ms: Option<u64>,
    body: String,
) -> DeadLetter {
    let parsed: Value = serde_json::from_str(&body).unwrap_or_default();
    let field = |k: &str| parsed[k].as_str().map(str::to_owned);
    let mut body = body;
    if body.len() > 2048 {
        let mut cut = 2048;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    DeadLetter {
        task_id: field("task_id").or(message_id),
        job_id: field("job_id"),
        method: field("method"),
        reason,
        queue,
        died_ms,
        body,
    }
}

fn dead_from_management(m: &Value) -> DeadLetter {
    let props = &m["properties"];
    let death = &props["headers"]["x-death"][0];
    dead_letter(
        props["message_id"].as_str().map(str::to_owned),
        death["reason"].as_str().map(str::to_owned),
        death["queue"].as_str().map(str::to_owned),
        death["time"].as_u64().map(|s| s * 1000),
        m["payload"].as_str().unwrap_or_default().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts_are_percent_encoded_and_management_defaults_to_the_amqp_host() {
        assert_eq!(pct("/"), "%2F");
        assert_eq!(pct("benchop-test.1"), "benchop-test.1");
        let b = Broker::new("amqp://u:p@10.0.0.5:5672/%2f", None);
        assert_eq!(b.vhost, "/");
        assert_eq!(
            b.management,
            Some(("http://10.0.0.5:15672".to_owned(), "u".to_owned(), "p".to_owned()))
        );
        assert_eq!(Broker::new("amqp://u:p@h/v", Some("off")).management, None);
    }

    #[test]
    fn dead_letters_read_their_task_from_the_body_and_the_death_from_the_headers() {
        let m = serde_json::json!({
            "payload": r#"{"task_id":"t1","job_id":"j1","method":"cos"}"#,
            "properties": {"message_id": "m", "headers": {"x-death": [
                {"reason": "delivery_limit", "queue": "benchop.tasks", "time": 1700000000}
            ]}}
        });
        let d = dead_from_management(&m);
        assert_eq!(d.task_id.as_deref(), Some("t1"));
        assert_eq!(d.method.as_deref(), Some("cos"));
        assert_eq!(d.reason.as_deref(), Some("delivery_limit"));
        assert_eq!(d.died_ms, Some(1_700_000_000_000));
        let undecodable = dead_letter(Some("m".into()), None, None, None, "garbage".into());
        assert_eq!(undecodable.task_id.as_deref(), Some("m"));
    }
}
