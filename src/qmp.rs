//! The few QMP messages the runner exchanges with QEMU, parsed from the
//! newline-delimited JSON stream. Pure.

use serde_json::Value;

/// What QEMU said about why it is shutting down (the SHUTDOWN event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// True when the guest itself powered off or halted.
    pub guest: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Greeting,
    /// The answer to a command; `id` is the one the command carried.
    Return {
        id: Option<String>,
        value: Value,
    },
    Error(String),
    Shutdown(Shutdown),
    OtherEvent(String),
}

pub const CAPABILITIES: &str = "{\"execute\":\"qmp_capabilities\"}\n";
pub const POWERDOWN: &str = "{\"execute\":\"system_powerdown\"}\n";
pub const QUERY_CPUS_ID: &str = "vcpus";
pub const QUERY_CPUS: &str = "{\"execute\":\"query-cpus-fast\",\"id\":\"vcpus\"}\n";

/// (vCPU index, host thread id) pairs from a query-cpus-fast answer.
pub fn vcpu_threads(value: &Value) -> Vec<(u32, i32)> {
    value
        .as_array()
        .map(|cpus| {
            cpus.iter()
                .filter_map(|c| {
                    Some((
                        c["cpu-index"].as_u64()? as u32,
                        c["thread-id"].as_i64()? as i32,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses one line of QMP output; None for what is not JSON or not known.
pub fn parse_line(line: &[u8]) -> Option<Message> {
    let v: Value = serde_json::from_slice(line).ok()?;
    if v.get("QMP").is_some() {
        return Some(Message::Greeting);
    }
    if let Some(value) = v.get("return") {
        let id = v.get("id").and_then(Value::as_str).map(String::from);
        return Some(Message::Return {
            id,
            value: value.clone(),
        });
    }
    if let Some(e) = v.get("error") {
        return Some(Message::Error(
            e["desc"].as_str().unwrap_or("unknown error").to_string(),
        ));
    }
    let event = v.get("event")?.as_str()?;
    if event == "SHUTDOWN" {
        let data = &v["data"];
        return Some(Message::Shutdown(Shutdown {
            guest: data["guest"].as_bool().unwrap_or(false),
            reason: data["reason"].as_str().unwrap_or("").to_string(),
        }));
    }
    Some(Message::OtherEvent(event.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_messages_the_runner_uses() {
        assert_eq!(
            parse_line(br#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}}, "capabilities": []}}"#),
            Some(Message::Greeting)
        );
        assert_eq!(
            parse_line(br#"{"return": {}}"#),
            Some(Message::Return {
                id: None,
                value: serde_json::json!({})
            })
        );
        let cpus = br#"{"return": [{"cpu-index": 0, "thread-id": 41}, {"cpu-index": 1, "thread-id": 42}], "id": "vcpus"}"#;
        let Some(Message::Return { id, value }) = parse_line(cpus) else {
            panic!()
        };
        assert_eq!(id.as_deref(), Some(QUERY_CPUS_ID));
        assert_eq!(vcpu_threads(&value), vec![(0, 41), (1, 42)]);
        assert_eq!(
            parse_line(br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#),
            Some(Message::Shutdown(Shutdown { guest: true, reason: "guest-shutdown".into() }))
        );
        assert_eq!(
            parse_line(
                br#"{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#
            ),
            Some(Message::Shutdown(Shutdown {
                guest: false,
                reason: "host-qmp-quit".into()
            }))
        );
        assert_eq!(
            parse_line(br#"{"error": {"class": "GenericError", "desc": "nope"}}"#),
            Some(Message::Error("nope".into()))
        );
        assert_eq!(
            parse_line(br#"{"event": "POWERDOWN"}"#),
            Some(Message::OtherEvent("POWERDOWN".into()))
        );
        assert_eq!(parse_line(b"garbage"), None);
    }
}
