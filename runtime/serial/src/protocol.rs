//! Machine mode (`tern serve --json`): one JSON object per line in each direction.
//!
//! Requests (one per line, UTF-8, at most the editor's line bound):
//!
//! ```text
//! {"prompt": "Explain tides", "n": 64, "temp": 0.0}   generate; "n" and "temp" optional, for this request only
//! {"cmd": "reset"}                                     forget the conversation
//! {"cmd": "system", "text": "Be brief."}               set the system prompt
//! {"cmd": "temp", "value": 0.7}                        set the default temperature
//! {"cmd": "stats"}                                     backend statistics
//! {"cmd": "quit"}                                      end the session
//! ```
//!
//! Responses (one per line):
//!
//! ```text
//! {"ready": true, "protocol": "tern-serial/1"}         once per connection
//! {"token": " Tides", "id": 350, "t_ms": 41.2}         per token; t_ms = ms since the previous token
//!                                                      (for the first: since the request arrived)
//! {"done": true, "n": 64, "tok_s": 12.5, "ttft_ms": 180.0, "stop": "length"}
//!                                                      stop: "eos" | "length" | "interrupted"
//! {"ok": true, "cmd": "reset"}                         command acknowledged
//! {"stats": "..."}                                     reply to {"cmd": "stats"}
//! {"error": "..."}                                     bad request, backend error, noise or overflow
//! ```
//!
//! A 0x03 byte (Ctrl-C) received during generation stops it (`"stop": "interrupted"`); other
//! bytes received meanwhile are kept and processed after `done`. Unknown keys are errors, so
//! a typo never silently changes behaviour.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::editor::{MAX_TEMP, parse_temp};

/// Protocol name announced in the `ready` line.
pub const PROTOCOL: &str = "tern-serial/1";

/// A parsed machine-mode request.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Generate from `prompt`.
    Generate {
        /// The user's text.
        prompt: String,
        /// Maximum new tokens for this request.
        n: Option<u32>,
        /// Temperature for this request.
        temp: Option<f32>,
    },
    /// `{"cmd":"reset"}`.
    Reset,
    /// `{"cmd":"system","text":...}`.
    System(String),
    /// `{"cmd":"temp","value":...}`.
    Temp(f32),
    /// `{"cmd":"stats"}`.
    Stats,
    /// `{"cmd":"quit"}`.
    Quit,
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key {k:?} (allowed: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

fn temp_value(v: &Value) -> Result<f32, String> {
    let f = v.as_f64().ok_or_else(|| format!("temp must be a number 0..={MAX_TEMP}"))?;
    parse_temp(&f.to_string())
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("a request must be a JSON object".into());
    };
    if let Some(p) = obj.get("prompt") {
        check_keys(&obj, &["prompt", "n", "temp"])?;
        let prompt = p.as_str().ok_or("prompt must be a string")?.to_string();
        let n = match obj.get("n") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or("n must be a positive integer")?,
            ),
        };
        let temp = match obj.get("temp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(temp_value(v)?),
        };
        return Ok(Request::Generate { prompt, n, temp });
    }
    let cmd = obj.get("cmd").and_then(Value::as_str).ok_or("expected \"prompt\" or \"cmd\"")?;
    match cmd {
        "reset" | "stats" | "quit" => {
            check_keys(&obj, &["cmd"])?;
            Ok(match cmd {
                "reset" => Request::Reset,
                "stats" => Request::Stats,
                _ => Request::Quit,
            })
        }
        "system" => {
            check_keys(&obj, &["cmd", "text"])?;
            let t = obj
                .get("text")
                .and_then(Value::as_str)
                .ok_or("system needs \"text\" (a string)")?;
            Ok(Request::System(t.to_string()))
        }
        "temp" => {
            check_keys(&obj, &["cmd", "value"])?;
            Ok(Request::Temp(temp_value(obj.get("value").ok_or("temp needs \"value\"")?)?))
        }
        other => Err(format!("unknown cmd {other:?} (reset, system, temp, stats, quit)")),
    }
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response<'a> {
    /// Connection greeting.
    Ready {
        /// Always true.
        ready: bool,
        /// [`PROTOCOL`].
        protocol: &'a str,
    },
    /// One token.
    Token {
        /// Token text (may be a partial UTF-8 character replaced by U+FFFD by the backend).
        token: &'a str,
        /// Token id.
        id: u32,
        /// Milliseconds since the previous token (first token: since the request).
        t_ms: f64,
    },
    /// End of a generation.
    Done {
        /// Always true.
        done: bool,
        /// Tokens generated.
        n: u32,
        /// Tokens per second over the whole request (prompt processing included).
        tok_s: f64,
        /// Time to first token, ms (`null` if none).
        ttft_ms: Option<f64>,
        /// `eos`, `length` or `interrupted`.
        stop: &'a str,
    },
    /// Command acknowledged.
    Ok {
        /// Always true.
        ok: bool,
        /// The command.
        cmd: &'a str,
    },
    /// Backend statistics.
    Stats {
        /// Free-form text from the backend.
        stats: &'a str,
    },
    /// An error.
    Error {
        /// What went wrong.
        error: &'a str,
    },
}

impl Response<'_> {
    /// The line to send, with `\n`.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self)
            .unwrap_or_else(|_| "{\"error\":\"serialisation failed\"}".into());
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(r#"{"prompt": "hi", "n": 64, "temp": 0.0}"#),
            Ok(Request::Generate { prompt: "hi".into(), n: Some(64), temp: Some(0.0) })
        );
        assert_eq!(
            parse_request(r#"{"prompt": "hi"}"#),
            Ok(Request::Generate { prompt: "hi".into(), n: None, temp: None })
        );
        assert_eq!(parse_request(r#"{"cmd":"reset"}"#), Ok(Request::Reset));
        assert_eq!(
            parse_request(r#"{"cmd":"system","text":"x"}"#),
            Ok(Request::System("x".into()))
        );
        assert_eq!(parse_request(r#"{"cmd":"temp","value":0.5}"#), Ok(Request::Temp(0.5)));
        assert!(parse_request(r#"{"prompt": "hi", "tmep": 1}"#).is_err_and(|e| e.contains("tmep")));
        assert!(parse_request(r#"{"prompt": "hi", "n": 0}"#).is_err());
        assert!(parse_request(r#"{"prompt": "hi", "temp": 9}"#).is_err());
        assert!(parse_request(r#"{"cmd":"dance"}"#).is_err());
        assert!(parse_request("[1]").is_err());
        assert!(parse_request("{").is_err_and(|e| e.starts_with("invalid JSON")));
    }

    #[test]
    fn responses() {
        assert_eq!(
            Response::Token { token: "a\"b", id: 7, t_ms: 1.5 }.to_line(),
            "{\"token\":\"a\\\"b\",\"id\":7,\"t_ms\":1.5}\n"
        );
        assert_eq!(
            Response::Done { done: true, n: 3, tok_s: 2.0, ttft_ms: None, stop: "eos" }.to_line(),
            "{\"done\":true,\"n\":3,\"tok_s\":2.0,\"ttft_ms\":null,\"stop\":\"eos\"}\n"
        );
        assert_eq!(Response::Error { error: "x" }.to_line(), "{\"error\":\"x\"}\n");
    }
}
