//! The deployment pieces: broker-config/ against the code and a real broker, docker-compose.yml and the
//! Dockerfile against the binaries, the cloud-init user-data against its schema, the systemd units against
//! systemd-analyze, and deploy/provision.sh installing and running the stack in a scratch root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use protocol::topology::{self, ArgValue, ExchangeKind};

use crate::broker_node::BrokerNode;
use crate::support;

const ROLES: [&str; 3] = ["baas", "worker", "monitor"];
const BINARIES: [&str; 4] = ["baas", "worker", "monitor", "benchop"];
const JOB: &str = r#"{"problem":"1aI","methods":["closed-form","cos"]}"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    let mut v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: YAML merge keys: {e}"));
    serde_json::to_value(v).expect("YAML as JSON")
}

fn definitions() -> Value {
    serde_json::from_str(&read("broker-config/definitions.json")).expect("definitions.json is JSON")
}

fn arg_json(v: &ArgValue) -> Value {
    match v {
        ArgValue::Str(s) => json!(s),
        ArgValue::Int(i) => json!(i),
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

fn rabbitmqctl(args: &[&str]) -> String {
    run(
        Command::new("rabbitmqctl").args(args),
        &format!(
            "rabbitmqctl {args:?} (RabbitMQ must be running: `rabbitmq-server -detached`; rabbitmqctl comes \
             with the rabbitmq-server package)"
        ),
    )
}

/// `<bin> --help`, for checking that a flag or an environment variable is one the binary accepts.
fn help(binary: &str) -> String {
    run(
        Command::new(support::bin(binary)).arg("--help"),
        &format!("{binary} --help"),
    )
}

// ------------------------------------------------------------------------------------------------ broker

#[test]
fn definitions_json_mirrors_protocol_topology() {
    let defs = definitions();
    let vhost = "benchop";
    assert_eq!(
        defs["vhosts"],
        json!([{"name": vhost, "description": defs["vhosts"][0]["description"]}])
    );

    let kind = |k: ExchangeKind| match k {
        ExchangeKind::Direct => "direct",
        ExchangeKind::Topic => "topic",
        ExchangeKind::Fanout => "fanout",
    };
    // Keyed by name (bindings by source → destination); map equality ignores key order.
    let keyed = |list: &Value, key: &dyn Fn(&Value) -> String| -> BTreeMap<String, Value> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|v| (key(v), v.clone()))
            .collect()
    };
    let by_name = |v: &Value| v["name"].as_str().expect("name").to_owned();
    let by_route = |v: &Value| format!("{} -> {}", v["source"], v["destination"]);

    let want: Vec<Value> = topology::exchanges()
        .iter()
        .map(|e| {
            json!({"name": e.name, "vhost": vhost, "type": kind(e.kind), "durable": true,
                   "auto_delete": false, "internal": false, "arguments": {}})
        })
        .collect();
    assert_eq!(
        keyed(&defs["exchanges"], &by_name),
        keyed(&json!(want), &by_name),
        "definitions.json exchanges differ from protocol::topology::exchanges()"
    );

    let want: Vec<Value> = topology::queues()
        .iter()
        .map(|q| {
            let args: serde_json::Map<String, Value> = q
                .arguments
                .iter()
                .map(|(k, v)| ((*k).to_owned(), arg_json(v)))
                .collect();
            json!({"name": q.name, "vhost": vhost, "durable": true, "auto_delete": false, "arguments": args})
        })
        .collect();
    assert_eq!(
        keyed(&defs["queues"], &by_name),
        keyed(&json!(want), &by_name),
        "definitions.json queues (or their x-arguments) differ from protocol::topology::queues()"
    );

    let want: Vec<Value> = topology::queues()
        .iter()
        .map(|q| {
            json!({"source": q.binding.0, "vhost": vhost, "destination": q.name, "destination_type": "queue",
                   "routing_key": q.binding.1, "arguments": {}})
        })
        .collect();
    assert_eq!(
        keyed(&defs["bindings"], &by_route),
        keyed(&json!(want), &by_route),
        "definitions.json bindings differ from protocol::topology::queues() bindings"
    );

    // One user per service, no secret committed, least privilege (never `.*` on configure or write).
    let users: BTreeSet<&str> = defs["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            assert!(
                u.get("password").is_none(),
                "plaintext password in definitions.json: {u}"
            );
            assert!(
                u.get("password_hash").is_none_or(|h| h == ""),
                "definitions.json must not carry password hashes (set at deploy time): {u}"
            );
            assert_eq!(u["tags"], json!([]), "service users need no tags: {u}");
            u["name"].as_str().expect("user name")
        })
        .collect();
    let expected: BTreeSet<String> = ROLES.iter().map(|r| format!("benchop-{r}")).collect();
    assert_eq!(
        users,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for p in defs["permissions"].as_array().expect("permissions") {
        assert_eq!(p["vhost"], vhost, "{p}");
        for what in ["configure", "write", "read"] {
            let re = p[what].as_str().expect("regex");
            assert!(
                re.starts_with("^(") || re.starts_with("^benchop\\."),
                "{what} must be anchored to benchop's names: {p}"
            );
            assert!(re.ends_with('$'), "{what} must be anchored at the end: {p}");
        }
    }
}

/// Users and vhost made from definitions.json with rewritten names; deleted on drop.
struct Imported {
    vhost: String,
    prefix: String,
    passwords: BTreeMap<&'static str, String>,
}

impl Imported {
    fn new() -> Self {
        let vhost = unique("benchop-test-defs");
        let prefix = unique("benchop-test");
        let text = read("broker-config/definitions.json").replace("\"benchop\"", &format!("\"{vhost}\""));
        let text = ROLES.iter().fold(text, |t, r| {
            t.replace(&format!("\"benchop-{r}\""), &format!("\"{prefix}-{r}\""))
        });
        let file = std::env::temp_dir().join(format!("{vhost}.json"));
        std::fs::write(&file, text).expect("write definitions copy");
        let me = Self {
            vhost,
            prefix,
            passwords: ROLES
                .iter()
                .map(|r| (*r, uuid::Uuid::new_v4().simple().to_string()))
                .collect(),
        };
        rabbitmqctl(&["import_definitions", &file.display().to_string()]);
        let _ = std::fs::remove_file(&file);
        for r in ROLES {
            let user = me.user(r);
            let start = Instant::now();
            // The import may be applied asynchronously: retry until the user exists.
            while Command::new("rabbitmqctl")
                .args(["change_password", &user, &me.passwords[r]])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "user {user} never appeared"
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        me
    }

    fn user(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn url(&self, role: &str) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:5672/{}",
            self.user(role),
            self.passwords[role],
            self.vhost
        )
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        for r in ROLES {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", &self.user(r)])
                .output();
        }
    }
}

async fn submit(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(JOB)
        .send()
        .await
        .expect("POST /v1/jobs");
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("job id").to_owned()
}

fn assert_job_ok(job: &Value) {
    let tasks = job["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{job:#}");
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"), "{job:#}");
    assert!(
        job["ranking"]
            .as_array()
            .expect("ranking")
            .iter()
            .any(|e| e["method"] == "closed-form" && e["standing"] == "reached"),
        "{job:#}"
    );
}

/// Whether the broker refuses an operation (the channel is closed with ACCESS_REFUSED, or the publish is
/// not confirmed).
async fn publish_refused(url: &str, exchange: &str, key: &str) -> bool {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let sent = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await;
    let acked = match sent {
        Ok(confirm) => matches!(confirm.await, Ok(c) if c.is_ack()),
        Err(_) => false,
    };
    !acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_grant_each_service_what_it_needs_and_no_more() {
    let imported = Imported::new();
    let port = support::free_port();
    let monitor_port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let data = std::env::temp_dir().join(unique("benchop-deploy-defs"));
    let mut baas = support::Proc::spawn(
        "baas",
        "baas",
        &[],
        &[
            ("AMQP_URL", imported.url("baas")),
            ("BAAS_ADDR", format!("127.0.0.1:{port}")),
            ("BENCHOP_DATA_DIR", data.display().to_string()),
        ],
    );
    let http = support::client();
    support::wait_healthy(
        &http,
        &format!("{base}/healthz"),
        Duration::from_secs(60),
        &mut baas,
    )
    .await;
    let mut monitor = support::Proc::spawn(
        "monitor",
        "monitor",
        &[],
        &[
            ("AMQP_URL", imported.url("monitor")),
            ("MONITOR_ADDR", format!("127.0.0.1:{monitor_port}")),
        ],
    );
    let monitor_base = format!("http://127.0.0.1:{monitor_port}");
    support::wait_healthy(
        &http,
        &format!("{monitor_base}/healthz"),
        Duration::from_secs(60),
        &mut monitor,
    )
    .await;
    let mut worker = support::Proc::spawn(
        "worker",
        "worker",
        &["--name", "deploy-defs-worker"],
        &[("AMQP_URL", imported.url("worker"))],
    );

    let id = submit(&http, &base).await;
    let job = support::wait_job(&http, &base, &id, Duration::from_secs(120)).await;
    assert_job_ok(&job);
    worker.assert_running();
    baas.assert_running();

    // The monitor's own queue receives the events of both publishers (topic permissions allow them).
    let start = Instant::now();
    loop {
        monitor.assert_running();
        let state: Value = http
            .get(format!("{monitor_base}/api/state"))
            .send()
            .await
            .expect("monitor state")
            .json()
            .await
            .expect("json");
        let counts = &state["event_counts"];
        if ["job.created", "job.finished", "task.succeeded", "worker.online"]
            .iter()
            .all(|k| counts[*k].as_u64().unwrap_or(0) > 0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "monitor missed events: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Least privilege is enforced, not only declared.
    use topology::{EVENTS_EXCHANGE, TASKS_EXCHANGE};
    assert!(
        publish_refused(&imported.url("monitor"), EVENTS_EXCHANGE, "job.created").await,
        "the monitor may not publish events"
    );
    assert!(
        publish_refused(&imported.url("worker"), EVENTS_EXCHANGE, "job.finished").await,
        "a worker may not publish job events"
    );
    assert!(
        publish_refused(&imported.url("baas"), EVENTS_EXCHANGE, "worker.online").await,
        "baas may not publish worker events"
    );
    assert!(
        !publish_refused(&imported.url("baas"), TASKS_EXCHANGE, "nothing-bound").await,
        "baas may publish to the tasks exchange (control case)"
    );
    let conn = lapin::Connection::connect(&imported.url("worker"), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let declared = ch
        .queue_declare(
            "benchop.unexpected".into(),
            lapin::options::QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(declared.is_err(), "a worker may not declare other queues");
    let _ = std::fs::remove_dir_all(&data);
}

// ------------------------------------------------------------------------------------------------ compose

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("string").to_owned()).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a string or a list: {other}"),
    }
}

fn env_map(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|kv| {
                let (k, v) = kv
                    .as_str()
                    .expect("KEY=value")
                    .split_once('=')
                    .expect("KEY=value");
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(_, p)| p).expect("host:port")
}

#[test]
fn compose_and_dockerfile_run_real_binaries_with_accepted_flags_env_and_ports() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    for needed in ["rabbitmq", "baas", "worker", "monitor"] {
        assert!(services.contains_key(needed), "service {needed} missing");
    }
    let dockerfile = read("Dockerfile");
    let env_example = read(".env.example");
    let compose_text = read("docker-compose.yml");
    let mut used_binaries = BTreeSet::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();

    for (name, svc) in services {
        // depends_on with conditions, on services that can satisfy them.
        if let Some(deps) = svc["depends_on"].as_object() {
            for (dep, cond) in deps {
                let c = cond["condition"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} → {dep}: no condition"));
                assert!(services.contains_key(dep), "{name} depends on unknown {dep}");
                match c {
                    "service_healthy" => assert!(
                        services[dep]["healthcheck"]["test"].is_array(),
                        "{name} waits for {dep} to be healthy but it has no health check"
                    ),
                    "service_completed_successfully" => {}
                    other => panic!("{name} → {dep}: condition {other}"),
                }
            }
        }
        if svc.get("build").is_none() {
            continue; // the broker and its set-up run the official image
        }
        assert!(svc["restart"].is_string(), "{name}: restart policy");
        let command = strs(&svc["command"]);
        let entry = strs(&svc["entrypoint"]);
        let argv: Vec<String> = entry.into_iter().chain(command).collect();
        let binary = argv
            .first()
            .unwrap_or_else(|| panic!("{name}: no command"))
            .clone();
        assert!(
            BINARIES.contains(&binary.as_str()),
            "{name} runs {binary}, not a workspace binary"
        );
        used_binaries.insert(binary.clone());
        let help = helps
            .entry(binary.clone())
            .or_insert_with(|| help(&binary))
            .clone();
        for flag in argv.iter().skip(1).filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().expect("flag");
            assert!(
                help.contains(flag),
                "{name}: `{binary}` does not accept {flag}:\n{help}"
            );
        }
        let env = env_map(svc);
        for key in env.keys().filter(|k| *k != "RUST_LOG") {
            assert!(
                help.contains(&format!("[env: {key}")),
                "{name}: `{binary}` does not read {key}:\n{help}"
            );
        }
        // Each service has its own broker user; its password comes from .env, never from this file. In
        // the cluster profile the URL lists the three nodes, in the order clients try them.
        let url = env.get("AMQP_URL").unwrap_or_else(|| panic!("{name}: AMQP_URL"));
        let in_cluster = strs(&svc["profiles"]).iter().any(|p| p == "cluster");
        let brokers: Vec<&str> = if in_cluster {
            vec!["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
        } else {
            vec!["rabbitmq"]
        };
        let urls: Vec<&str> = url.split(',').collect();
        assert_eq!(
            urls.len(),
            brokers.len(),
            "{name}: one broker URL per node: {url}"
        );
        let mut password_var = None;
        for (one, broker) in urls.iter().zip(&brokers) {
            let (userinfo, rest) = one
                .trim_start_matches("amqp://")
                .split_once('@')
                .expect("user:password@host");
            let (user, password) = userinfo.split_once(':').expect("user:password");
            assert_eq!(user, format!("benchop-{binary}"), "{name}: broker user");
            assert!(password.starts_with("${"), "{name}: password must come from .env");
            let var = password
                .trim_start_matches("${")
                .split([':', '}'])
                .next()
                .expect("var");
            match &password_var {
                None => {
                    assert!(
                        password.contains(":?"),
                        "{name}: password must be a required ${{VAR:?…}}"
                    );
                    assert!(
                        env_example.contains(&format!("{var}=")),
                        ".env.example lacks {var}"
                    );
                    password_var = Some(var.to_owned());
                }
                Some(first) => assert_eq!(first, var, "{name}: one password for every node"),
            }
            assert_eq!(
                rest,
                format!("{broker}:5672/benchop"),
                "{name}: broker address and vhost"
            );
        }

        // HTTP services listen on all interfaces inside the container, on the published port, with a health check.
        let addr = env
            .iter()
            .find(|(k, _)| k.ends_with("_ADDR"))
            .map(|(_, v)| v.clone());
        if let Some(addr) = addr {
            assert!(
                addr.starts_with("0.0.0.0:"),
                "{name}: listen on 0.0.0.0 in a container, not {addr}"
            );
            let port = port_of(&addr);
            let ports = strs(&svc["ports"]);
            assert!(
                ports.iter().any(|p| p.rsplit(':').next() == Some(port)),
                "{name}: {addr} is not published ({ports:?})"
            );
            let check = strs(&svc["healthcheck"]["test"]).join(" ");
            assert!(
                check.contains(&format!("127.0.0.1:{port}/healthz")),
                "{name}: health check should GET /healthz on {port}: {check}"
            );
            if check.contains("curl") {
                assert!(
                    dockerfile.contains(" curl"),
                    "health checks use curl: install it in the runtime image"
                );
            }
        }
    }
    assert!(
        services["worker"]["deploy"]["replicas"].as_u64().unwrap_or(0) >= 2,
        "worker replicas"
    );
    let mq = &services["rabbitmq"];
    assert!(
        mq["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("rabbitmq:3.13-management"))
    );
    assert!(mq["healthcheck"]["test"].is_array(), "rabbitmq health check");
    let mounts = strs(&mq["volumes"]).join(" ");
    for f in ["./broker-config/rabbitmq.conf", "./broker-config/enabled_plugins"] {
        assert!(mounts.contains(f), "rabbitmq mounts {f}");
    }
    assert!(
        strs(&services["rabbitmq-setup"]["entrypoint"])
            .join(" ")
            .contains("broker-setup.sh")
    );
    assert!(
        !compose_text.to_lowercase().contains("guest:guest"),
        "no default credentials in compose"
    );
    check_cluster_profile(services, &compose, &env_example);

    // The Dockerfile builds every binary compose runs and ships it in a non-root runtime image.
    assert!(
        dockerfile.contains("FROM rust:") && dockerfile.contains("-bookworm AS build"),
        "rust bookworm builder"
    );
    assert!(
        dockerfile.contains("FROM debian:bookworm-slim"),
        "debian slim runtime"
    );
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("cargo build in Dockerfile");
    for f in ["--release", "--locked", "--bins"] {
        assert!(build.contains(f), "cargo build needs {f}: {build}");
    }
    for b in &used_binaries {
        assert!(
            dockerfile.contains(&format!("target/release/{b}")),
            "Dockerfile does not copy {b} out of the build"
        );
        assert!(
            dockerfile.contains(&format!("/out/{b}")),
            "Dockerfile does not ship {b}"
        );
    }
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("USER in Dockerfile");
    assert!(
        !user.contains("root") && !user.contains(" 0"),
        "runtime runs as root: {user}"
    );
    let ignore = read(".dockerignore");
    for pat in [".env", "target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == pat),
            ".dockerignore must exclude {pat}"
        );
    }
}

/// The `cluster` profile: three RabbitMQ nodes whose host names are the peers of broker-config/cluster.conf,
/// each with the shipped configuration and the Erlang cookie from a compose secret; a set-up that waits for
/// all three; every benchop service of the profile has a twin in the default stack.
fn check_cluster_profile(services: &serde_json::Map<String, Value>, compose: &Value, env_example: &str) {
    let cluster_conf = read("broker-config/cluster.conf");
    let peers: Vec<&str> = cluster_conf
        .lines()
        .filter(|l| l.starts_with("cluster_formation.classic_config.nodes."))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim()))
        .collect();
    assert_eq!(peers.len(), 3, "cluster.conf lists three peers: {peers:?}");
    for peer in &peers {
        let host = peer.strip_prefix("rabbit@").expect("peer rabbit@<host>");
        let node = services
            .get(host)
            .unwrap_or_else(|| panic!("cluster.conf names {peer} but compose has no service {host}"));
        assert_eq!(
            node["hostname"], host,
            "{host}: the host name makes the node rabbit@{host}"
        );
        assert_eq!(strs(&node["profiles"]), ["cluster"], "{host}: profile");
        assert_eq!(
            node["image"], services["rabbitmq"]["image"],
            "{host}: same image as the single node"
        );
        let mounts = strs(&node["volumes"]).join(" ");
        for f in [
            "./broker-config/rabbitmq.conf:/etc/rabbitmq/conf.d/20-benchop.conf",
            "./broker-config/cluster.conf:/etc/rabbitmq/conf.d/30-cluster.conf",
        ] {
            assert!(mounts.contains(f), "{host} mounts {f}");
        }
        assert!(node["healthcheck"]["test"].is_array(), "{host}: health check");
        assert_eq!(
            strs(&node["secrets"]),
            ["erlang_cookie"],
            "{host}: the cookie secret"
        );
        let entry = strs(&node["entrypoint"]).join(" ");
        assert!(
            entry.contains("/run/secrets/erlang_cookie /var/lib/rabbitmq/.erlang.cookie")
                && entry.contains("exec docker-entrypoint.sh rabbitmq-server"),
            "{host}: installs the cookie, then runs the image's entrypoint: {entry}"
        );
    }
    // The cookie is a secret read from the environment (.env), never a value in the repository.
    let secret = &compose["secrets"]["erlang_cookie"];
    let var = secret["environment"]
        .as_str()
        .expect("secret erlang_cookie from an environment variable");
    assert!(
        env_example.contains(&format!("\n{var}=\n")),
        ".env.example lists {var} empty"
    );
    assert!(
        !read("broker-config/cluster.conf").contains("cookie ="),
        "no cookie in cluster.conf"
    );
    let setup = &services["rabbitmq-cluster-setup"];
    let command = strs(&setup["command"]).join(" ");
    assert!(
        command.contains("--cluster-nodes 3") && command.contains(&format!("--node {}", peers[0])),
        "the cluster set-up waits for the three nodes: {command}"
    );
    for peer in &peers {
        let host = peer.trim_start_matches("rabbit@");
        assert_eq!(
            setup["depends_on"][host]["condition"], "service_healthy",
            "set-up waits for {host}"
        );
    }
    for twin in ["baas", "worker", "monitor"] {
        let svc = &services[&format!("{twin}-cluster")];
        assert_eq!(strs(&svc["profiles"]), ["cluster"], "{twin}-cluster: profile");
        assert_eq!(
            svc["command"], services[twin]["command"],
            "{twin}-cluster runs what {twin} runs"
        );
        for (k, v) in env_map(&services[twin]).iter().filter(|(k, _)| *k != "AMQP_URL") {
            assert_eq!(env_map(svc).get(k), Some(v), "{twin}-cluster: {k}");
        }
        assert_eq!(
            svc["depends_on"]["rabbitmq-cluster-setup"]["condition"], "service_completed_successfully",
            "{twin}-cluster waits for the cluster set-up"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_conf_makes_three_fresh_nodes_find_each_other() {
    let conf = read("broker-config/cluster.conf");
    let nodes = BrokerNode::start_many("peers", 3, |names| {
        // The shipped file with the test's node names for rabbit@rabbitmq-1..3.
        let mut text = conf.clone();
        for (i, name) in names.iter().enumerate() {
            text = text.replace(&format!("rabbit@rabbitmq-{}", i + 1), name);
        }
        format!("\n{text}")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Value = serde_json::from_str(&nodes[0].ctl(&["cluster_status", "--formatter", "json"]))
            .expect("cluster_status JSON");
        let running = status["running_nodes"].as_array().map_or(0, Vec::len);
        if running == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not form one cluster by peer discovery: {status}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // pause_minority is in force (a typo in the file would leave the default, ignore).
    let handling = nodes[1].ctl(&["eval", "application:get_env(rabbit, cluster_partition_handling)."]);
    assert!(handling.contains("pause_minority"), "{handling}");
}

// ------------------------------------------------------------------------------------------------ cloud-init, systemd

const CLOUD_INIT_HOW: &str = "cloud-init is needed to validate cloud-init/*.yaml: `apt-get install -y cloud-init` \
    (Debian/Ubuntu package; gives `cloud-init schema`)";

#[test]
fn cloud_init_user_data_is_valid_and_runs_the_shipped_bootstrap() {
    let bootstrap = read("deploy/bootstrap.sh");
    for file in ["cloud-init/user-data.yaml", "cloud-init/worker-user-data.yaml"] {
        let out = Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(repo().join(file))
            .output()
            .unwrap_or_else(|e| panic!("cannot run cloud-init ({e}). {CLOUD_INIT_HOW}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("Valid cloud-config"),
            "{file}: {text}"
        );
        assert!(
            read(file).starts_with("#cloud-config\n"),
            "{file}: #cloud-config header"
        );

        let doc = yaml(file);
        let files = doc["write_files"].as_array().expect("write_files");
        let embedded = files
            .iter()
            .find(|f| f["path"] == "/usr/local/sbin/benchop-bootstrap")
            .expect("the bootstrap script is installed");
        assert_eq!(
            embedded["content"].as_str(),
            Some(bootstrap.as_str()),
            "{file}: the embedded bootstrap must be an exact copy of deploy/bootstrap.sh"
        );
        let conf = files
            .iter()
            .find(|f| f["path"] == "/etc/benchop/bootstrap.conf")
            .expect("bootstrap.conf");
        assert_eq!(conf["permissions"], "0600", "{file}: bootstrap.conf is root-only");
        assert!(
            doc["runcmd"]
                .to_string()
                .contains("/usr/local/sbin/benchop-bootstrap"),
            "{file}: runcmd runs the bootstrap"
        );
        let role = if file.contains("worker") { "worker" } else { "all" };
        let content = conf["content"].as_str().expect("content");
        assert!(content.contains(&format!("BENCHOP_ROLE={role}\n")));
        assert!(!content.contains("--no-tls"), "{file}: TLS stays on");
        if role == "worker" {
            // A worker VM joins over TLS by default, verifying the broker against the CA written next to it.
            let url = content
                .lines()
                .find_map(|l| l.strip_prefix("AMQP_URL="))
                .expect("AMQP_URL in bootstrap.conf");
            assert!(
                url.starts_with("amqps://") && url.contains(":5671/"),
                "{file}: {url}"
            );
            let ca = url.split("cacertfile=").nth(1).expect("cacertfile in AMQP_URL");
            let ca_file = files
                .iter()
                .find(|f| f["path"] == ca)
                .unwrap_or_else(|| panic!("{file}: nothing writes {ca}"));
            assert_eq!(ca_file["permissions"], "0644");
            let placeholder = ca_file["content"].as_str().expect("content");
            assert!(
                !placeholder.contains("-----BEGIN CERTIFICATE-----\n"),
                "{file}: no certificate is committed"
            );
            // The endpoints parser accepts the URL's shape (with the placeholder CA swapped for a real one).
            let dir = std::env::temp_dir().join(format!("benchop-ci-ca-{}", std::process::id()));
            let test_ca = crate::certs::TestCa::new(&dir, "ci");
            let swapped = url.replace(ca, &test_ca.ca_pem().display().to_string());
            assert!(protocol::amqp::endpoints(&swapped).is_ok(), "{swapped}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

const SYSTEMD_HOW: &str = "systemd-analyze is needed to verify deploy/systemd/*.service: `apt-get install -y systemd` \
    (Debian/Ubuntu)";

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let root = std::env::temp_dir().join(unique("benchop-units"));
    let bin = root.join("opt/benchop/bin");
    let etc = root.join("etc/benchop");
    let units = root.join("units");
    for d in [&bin, &etc, &units, &root.join("var/lib/benchop")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    for b in BINARIES {
        std::os::unix::fs::symlink(support::bin(b), bin.join(b)).expect("symlink");
    }
    for r in ROLES {
        std::fs::write(etc.join(format!("{r}.env")), "").expect("env file");
    }
    let mut paths = Vec::new();
    for (template, name) in [
        ("benchop-baas.service", "benchop-baas.service"),
        ("benchop-monitor.service", "benchop-monitor.service"),
        ("benchop-worker@.service", "benchop-worker@1.service"),
    ] {
        let text = read(&format!("deploy/systemd/{template}"))
            .replace("@PREFIX@", &root.display().to_string())
            .replace("@USER@", "root");
        assert!(
            text.contains("Restart=on-failure"),
            "{template}: Restart=on-failure"
        );
        let path = units.join(name);
        std::fs::write(&path, text).expect("unit");
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap_or_else(|e| panic!("cannot run systemd-analyze ({e}). {SYSTEMD_HOW}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only complaints about our units count (the container's own unit set may be incomplete).
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("benchop")).collect();
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

// ------------------------------------------------------------------------------------------------ provision.sh

/// A scratch install root with processes started by provision.sh --no-systemd; stops them and removes the
/// vhost and users on drop.
struct Provisioned {
    dir: PathBuf,
    root: PathBuf,
    vhost: String,
    prefix: String,
}

impl Provisioned {
    fn stop(&self) {
        let script = repo().join("deploy/provision.sh");
        let _ = Command::new(script)
            .args(["--stop", "--prefix"])
            .arg(&self.root)
            .output();
    }
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        for r in ROLES {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", &format!("{}-{r}", self.prefix)])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn pids(run_dir: &Path) -> Vec<u32> {
    std::fs::read_dir(run_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_sh_installs_and_runs_the_stack_in_a_scratch_root() {
    let dir = std::env::temp_dir().join(unique("benchop-provision"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = Provisioned {
        root: dir.join("root"),
        dir: dir.clone(),
        vhost: unique("benchop-test-prov"),
        prefix: unique("benchop-test-prov"),
    };
    let port = support::free_port();
    let monitor_port = support::free_port();

    // The release tarball, as an operator makes it, fetched through a file:// URL by the bootstrap that
    // cloud-init runs.
    let bin_dir = support::bin("baas").parent().expect("bin dir").to_path_buf();
    let tarball = dir.join("benchop.tar.gz");
    run(
        Command::new(repo().join("deploy/package.sh"))
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--out")
            .arg(&tarball),
        "deploy/package.sh",
    );
    let args = format!(
        "--prefix {} --no-systemd --workers 1 --vhost {} --user-prefix {} --baas-addr 127.0.0.1:{port} \
         --monitor-addr 127.0.0.1:{monitor_port} --firewall --amqp-allow 10.0.0.0/8",
        p.root.display(),
        p.vhost,
        p.prefix
    );
    let conf = dir.join("bootstrap.conf");
    std::fs::write(
        &conf,
        format!(
            "BENCHOP_RELEASE_URL=file://{}\nBENCHOP_ROLE=all\nBENCHOP_RELEASE_DIR={}\nBENCHOP_PROVISION_ARGS=\"{args}\"\n",
            tarball.display(),
            dir.join("release").display()
        ),
    )
    .expect("bootstrap.conf");
    run(
        Command::new("timeout")
            .arg("300")
            .arg(repo().join("deploy/bootstrap.sh"))
            .arg(&conf),
        "deploy/bootstrap.sh (runs provision.sh)",
    );

    let root = &p.root;
    for b in BINARIES {
        assert!(root.join("opt/benchop/bin").join(b).exists(), "{b} installed");
    }
    for r in ROLES {
        assert_eq!(
            mode(&root.join(format!("etc/benchop/{r}.env"))),
            0o600,
            "{r}.env is root-only"
        );
        assert_eq!(
            mode(&root.join(format!("etc/benchop/secrets/rabbitmq-{r}.password"))),
            0o600
        );
    }
    let secret =
        std::fs::read_to_string(root.join("etc/benchop/secrets/rabbitmq-worker.password")).expect("secret");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/rabbitmq/enabled_plugins")).expect("enabled_plugins"),
        read("broker-config/enabled_plugins")
    );
    // The broker configuration is the shipped one plus a TLS listener with a generated certificate.
    let conf = std::fs::read_to_string(root.join("etc/rabbitmq/rabbitmq.conf")).expect("rabbitmq.conf");
    assert!(conf.starts_with(&read("broker-config/rabbitmq.conf")), "{conf}");
    let tls_dir = root.join("etc/rabbitmq/tls");
    for line in [
        "listeners.ssl.default = 5671".to_owned(),
        format!("ssl_options.certfile = {}", tls_dir.join("server.pem").display()),
        format!(
            "ssl_options.keyfile = {}",
            tls_dir.join("server-key.pem").display()
        ),
        format!("ssl_options.cacertfile = {}", tls_dir.join("ca.pem").display()),
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "rabbitmq.conf lacks `{line}`:\n{conf}"
        );
    }
    assert_eq!(mode(&tls_dir.join("server-key.pem")), 0o640);
    assert_eq!(mode(&root.join("etc/benchop/secrets/broker-ca-key.pem")), 0o600);
    for u in [
        "benchop-baas.service",
        "benchop-monitor.service",
        "benchop-worker@.service",
    ] {
        let unit = std::fs::read_to_string(root.join("etc/systemd/system").join(u)).expect(u);
        assert!(
            unit.contains(&format!("ExecStart={}/opt/benchop/bin/", root.display())),
            "{u} rendered for the prefix"
        );
    }
    let nft = std::fs::read_to_string(root.join("etc/nftables.conf")).expect("nftables.conf");
    assert!(nft.contains("policy drop;"), "{nft}");
    assert!(
        nft.contains(&format!("tcp dport {{ {port}, {monitor_port} }} accept")),
        "{nft}"
    );
    assert!(
        nft.contains("ip saddr 10.0.0.0/8 tcp dport { 5671 } accept"),
        "remote workers reach AMQP over TLS: {nft}"
    );
    for closed in ["5672", "15672", "15692", "25672", "4369"] {
        assert!(
            !nft.lines().any(|l| l.contains("dport") && l.contains(closed)),
            "{closed} must stay closed: {nft}"
        );
    }
    let nft_file = root.join("etc/nftables.conf");
    let out = Command::new("nft")
        .arg("-c")
        .arg("-f")
        .arg(&nft_file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run nft ({e}): `apt-get install -y nftables` to check the firewall rules")
        });
    assert!(
        out.status.success(),
        "nft -c rejects the generated rules: {}\n{nft}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The generated certificate really serves TLS: a broker node presenting it is verified by a client
    // that trusts only the generated CA (what a worker VM gets), at an address the certificate names.
    let generated = crate::certs::ServerCert {
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let tls_broker = BrokerNode::start_tls("provtls", &generated).await;
    let ca = root.join("etc/benchop/broker-ca.pem");
    let conn = protocol::amqp::connect(&tls_broker.tls_url(&ca), "provision-tls", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the provisioned broker certificate is not accepted: {e}"));
    assert!(conn.status().connected());
    let _ = conn.close(200, "checked".into()).await;
    drop(tls_broker);

    let http = support::client();
    let base = format!("http://127.0.0.1:{port}");
    let wait_up = |url: String| {
        let http = http.clone();
        async move {
            let start = Instant::now();
            loop {
                if let Ok(r) = http.get(&url).send().await
                    && r.status().is_success()
                {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "{url} not healthy after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_up(format!("{base}/healthz")).await;
    wait_up(format!("http://127.0.0.1:{monitor_port}/healthz")).await;
    let id = submit(&http, &base).await;
    assert_job_ok(&support::wait_job(&http, &base, &id, Duration::from_secs(120)).await);
    // The monitor keeps its history on disk, beside the job store.
    assert!(
        root.join("var/lib/benchop/monitor.db").exists(),
        "provision.sh sets MONITOR_DB in the data directory"
    );

    // Idempotent: a second run keeps the secrets and the binaries, restarts the services, and they work.
    let first_pids = pids(&root.join("run/benchop"));
    assert_eq!(first_pids.len(), 3, "baas, monitor, one worker");
    let mut again = Command::new("timeout");
    again
        .arg("300")
        .arg(dir.join("release/deploy/provision.sh"))
        .args(args.split_whitespace());
    run(&mut again, "provision.sh (second run)");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/benchop/secrets/rabbitmq-worker.password")).expect("secret"),
        secret,
        "secrets are generated once"
    );
    wait_up(format!("{base}/healthz")).await;
    let id = submit(&http, &base).await;
    assert_job_ok(&support::wait_job(&http, &base, &id, Duration::from_secs(120)).await);

    let running = pids(&root.join("run/benchop"));
    assert_eq!(running.len(), 3);
    p.stop();
    for pid in running.into_iter().chain(first_pids) {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
        assert!(
            exe.map_or(true, |e| !e.starts_with(root)),
            "process {pid} still running after --stop"
        );
    }
}

#[test]
fn a_worker_vm_without_the_broker_ca_stops_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("benchop-worker-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = support::bin("worker");
    let bin_dir = bin.parent().expect("bin dir");
    // What cloud-init/worker-user-data.yaml writes until the operator pastes the CA in.
    let doc = yaml("cloud-init/worker-user-data.yaml");
    let placeholder = doc["write_files"]
        .as_array()
        .expect("write_files")
        .iter()
        .find(|f| f["path"] == "/etc/benchop/broker-ca.pem")
        .and_then(|f| f["content"].as_str())
        .expect("the CA placeholder")
        .to_owned();
    let ca = dir.join("broker-ca.pem");
    for (content, expected) in [(None, "is missing"), (Some(placeholder), "holds no certificate")] {
        if let Some(text) = &content {
            std::fs::write(&ca, text).expect("write CA");
        }
        let url = format!(
            "amqps://benchop-worker:secret@10.0.0.10:5671/benchop?cacertfile={}",
            ca.display()
        );
        let out = Command::new("bash")
            .arg(repo().join("deploy/provision.sh"))
            .args(["--role", "worker", "--no-systemd", "--workers", "0", "--prefix"])
            .arg(dir.join("root"))
            .arg("--bin-dir")
            .arg(bin_dir)
            .args(["--amqp-url", &url])
            .output()
            .expect("run provision.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "provision.sh accepted a missing CA: {stderr}"
        );
        assert!(
            stderr.contains(expected) && stderr.contains("broker-ca.pem"),
            "{expected}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
