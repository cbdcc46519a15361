//! Bad input never panics: every decoder of the wire format and the job validation return an error for
//! arbitrary bytes, arbitrary JSON and mutated valid messages. (Fuzzing by proptest: thousands of
//! cases per run, a fixed seed in CI.)

use proptest::prelude::*;
use serde_json::{Value, json};

use protocol::api::JobRequest;
use protocol::control::Control;
use protocol::{Event, TaskMessage, TaskResult};

/// Feed one input to every decoder; they may fail, never panic. Validation runs on any request that
/// decodes.
fn decode_all(bytes: &[u8]) {
    let _ = TaskMessage::decode(bytes);
    let _ = TaskResult::decode(bytes);
    let _ = Event::decode(bytes);
    let _ = Event::decode_batch(bytes);
    let _ = Control::decode(bytes);
    if let Ok(request) = serde_json::from_slice::<JobRequest>(bytes) {
        let _ = request.validate();
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        "[a-zA-Z0-9_. -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("1aI"),
            Just("4a"),
            Just("cos"),
            Just("fd"),
            Just("catalogue"),
            Just("succeeded"),
            Just("task_received"),
            Just("cancel_job")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("problem".to_owned()),
                    Just("methods".to_owned()),
                    Just("tolerance".to_owned()),
                    Just("repeats".to_owned()),
                    Just("replicas".to_owned()),
                    Just("type".to_owned()),
                    Just("schema_version".to_owned()),
                    Just("task_id".to_owned()),
                    Just("outcome".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Valid messages of every kind, to mutate.
fn valid_messages() -> Vec<Value> {
    vec![
        json!({"problem": "1aI", "methods": ["cos", "fd"], "tolerance": 1e-4, "repeats": 3, "replicas": 2}),
        json!({"schema_version": 1, "task_id": "8d0c4f7e-3f5a-4c8e-9a59-0c5f0e0b7a11",
               "job_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "problem": {"catalogue": "1aI"},
               "method": "cos", "tolerance": 1e-4, "repeats": 3, "time_limit_ms": 1000}),
        json!({"schema_version": 1, "task_id": "8d0c4f7e-3f5a-4c8e-9a59-0c5f0e0b7a11",
               "job_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "method": "cos", "worker": "w",
               "started_ms": 1, "finished_ms": 2, "outcome": {"status": "failed", "kind": "timed_out", "reason": "x"}}),
        json!({"ts_ms": 5, "type": "task_succeeded", "task_id": "8d0c4f7e-3f5a-4c8e-9a59-0c5f0e0b7a11",
               "worker": "w", "runtime_ms": 3}),
        json!({"type": "set_concurrency", "worker": "*", "concurrency": 4}),
    ]
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(2_000);
    if std::env::var_os("CI").is_some() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5eed);
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_a_decoder(value in json_value()) {
        decode_all(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        which in 0usize..5,
        field in "[a-z_]{1,14}",
        replacement in json_value(),
        cut in 0usize..400,
    ) {
        let mut message = valid_messages()[which].clone();
        let keys: Vec<String> = message.as_object().unwrap().keys().cloned().collect();
        let key = keys.iter().find(|k| k.starts_with(&field[..1])).cloned().unwrap_or(field);
        message[key.as_str()] = replacement;
        let bytes = serde_json::to_vec(&message).unwrap();
        decode_all(&bytes);
        // Truncated documents too.
        decode_all(&bytes[..cut.min(bytes.len())]);
    }

    /// A request that validates is within every limit.
    #[test]
    fn validated_requests_respect_the_limits(value in json_value()) {
        if let Ok(request) = serde_json::from_value::<JobRequest>(value)
            && let Ok(job) = request.validate()
        {
            prop_assert!((1e-8..=1e-2).contains(&job.tolerance));
            prop_assert!((1..=protocol::api::MAX_REPEATS).contains(&job.repeats));
            prop_assert!((1..=protocol::api::MAX_REPLICAS).contains(&job.replicas));
            prop_assert!(!job.methods.is_empty());
        }
    }
}

#[test]
fn the_valid_messages_decode() {
    let m = valid_messages();
    serde_json::from_value::<JobRequest>(m[0].clone())
        .unwrap()
        .validate()
        .unwrap();
    TaskMessage::decode(&serde_json::to_vec(&m[1]).unwrap()).unwrap();
    TaskResult::decode(&serde_json::to_vec(&m[2]).unwrap()).unwrap();
    Event::decode(&serde_json::to_vec(&m[3]).unwrap()).unwrap();
    Control::decode(&serde_json::to_vec(&m[4]).unwrap()).unwrap();
}
