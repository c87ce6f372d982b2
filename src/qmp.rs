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
    Return,
    Error(String),
    Shutdown(Shutdown),
    OtherEvent(String),
}

pub const CAPABILITIES: &str = "{\"execute\":\"qmp_capabilities\"}\n";
pub const POWERDOWN: &str = "{\"execute\":\"system_powerdown\"}\n";

/// Parses one line of QMP output; None for what is not JSON or not known.
pub fn parse_line(line: &[u8]) -> Option<Message> {
    let v: Value = serde_json::from_slice(line).ok()?;
    if v.get("QMP").is_some() {
        return Some(Message::Greeting);
    }
    if v.get("return").is_some() {
        return Some(Message::Return);
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
        assert_eq!(parse_line(br#"{"return": {}}"#), Some(Message::Return));
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
