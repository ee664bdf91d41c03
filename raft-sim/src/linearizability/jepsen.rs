//! Parsers for recorded histories in the two formats of the reference data.
//!
//! This module owns turning text into [`Operation`] lists: Jepsen's etcd
//! register logs (`INFO  jepsen.util - P :type :f VALUE`) into register
//! operations, and one-EDN-map-per-line key-value histories into
//! [`KvInput`]/[`KvOutput`] operations. Both share one pairing rule: a process
//! has at most one pending invocation; `:ok` completes it, `:fail` drops it
//! (it definitely did not take effect), `:info` leaves its outcome unknown and
//! frees the process number for a new process. Invocations still pending at
//! the end are unknown too. Times are event positions. Malformed input is an
//! [`Error::HistoryParse`] naming the line; parsing never panics.

use std::collections::HashMap;

use super::Operation;
use super::kv::{KvInput, KvOutput};
use super::register::{RegisterInput, RegisterOutput};
use crate::Error;

/// How a pending invocation ended.
enum Completion<O> {
    /// It took effect with this output.
    Ok(O),
    /// It definitely did not take effect.
    Fail,
    /// Its outcome is unknown.
    Info,
}

/// Pairs invocations with completions, process by process.
struct HistoryBuilder<I, O> {
    /// Operations in invocation order; None once dropped by a failure.
    ops: Vec<Option<Operation<I, O>>>,
    /// The pending operation (index into `ops`) of each busy process.
    pending: HashMap<u64, usize>,
    /// The position of the next event.
    time: u64,
}

impl<I, O> HistoryBuilder<I, O> {
    fn new() -> Self {
        Self {
            ops: Vec::new(),
            pending: HashMap::new(),
            time: 0,
        }
    }

    fn invoke(&mut self, line: usize, process: u64, input: I) -> Result<(), Error> {
        if self.pending.contains_key(&process) {
            return Err(parse_error(
                line,
                format!("process {process} invoked twice"),
            ));
        }
        self.pending.insert(process, self.ops.len());
        self.ops.push(Some(Operation {
            client: process,
            input,
            call: self.time,
            ret: None,
            output: None,
        }));
        self.time += 1;
        Ok(())
    }

    /// Completes `process`'s pending operation; `judge` checks the completion
    /// against the invoked input and decides its outcome.
    fn complete(
        &mut self,
        line: usize,
        process: u64,
        judge: impl FnOnce(&I) -> Result<Completion<O>, String>,
    ) -> Result<(), Error> {
        let no_pending = || parse_error(line, format!("process {process} has no pending call"));
        let index = self.pending.remove(&process).ok_or_else(no_pending)?;
        let slot = self.ops.get_mut(index).ok_or_else(no_pending)?;
        let op = slot.as_mut().ok_or_else(no_pending)?;
        match judge(&op.input).map_err(|message| parse_error(line, message))? {
            Completion::Ok(output) => {
                op.ret = Some(self.time);
                op.output = Some(output);
            }
            Completion::Fail => *slot = None,
            Completion::Info => {}
        }
        self.time += 1;
        Ok(())
    }

    fn finish(self) -> Vec<Operation<I, O>> {
        self.ops.into_iter().flatten().collect()
    }
}

fn parse_error(line: usize, message: impl Into<String>) -> Error {
    Error::HistoryParse {
        line,
        message: message.into(),
    }
}

/// The event type of a history line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

fn event_type(word: &str) -> Result<EventType, String> {
    match word {
        ":invoke" | "invoke" => Ok(EventType::Invoke),
        ":ok" | "ok" => Ok(EventType::Ok),
        ":fail" | "fail" => Ok(EventType::Fail),
        ":info" | "info" => Ok(EventType::Info),
        other => Err(format!("unknown event type {other:?}")),
    }
}

/// Log levels that open lines of other loggers, which are skipped.
const LOG_LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// Parses a Jepsen etcd register log into register operations.
///
/// Blank lines and lines of loggers other than `jepsen.util` are skipped;
/// every other line must be a well-formed history line.
pub fn parse_jepsen_log(
    text: &str,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, Error> {
    let mut builder = HistoryBuilder::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        match tokens.as_slice() {
            [] => {}
            [level, logger, ..] if LOG_LEVELS.contains(level) && *logger != "jepsen.util" => {}
            [level, "jepsen.util", "-", process, kind, f, value @ ..]
                if LOG_LEVELS.contains(level) && !value.is_empty() =>
            {
                let process = parse_process(process).map_err(|m| parse_error(line, m))?;
                let kind = event_type(kind).map_err(|m| parse_error(line, m))?;
                let value = value.join(" ");
                jepsen_event(&mut builder, line, process, kind, f, &value)?;
            }
            _ => return Err(parse_error(line, format!("not a history line: {raw:?}"))),
        }
    }
    Ok(builder.finish())
}

fn parse_process(word: &str) -> Result<u64, String> {
    word.parse()
        .map_err(|_| format!("process {word:?} is not a number"))
}

/// A register value as written in a log: nil, an integer or `[OLD NEW]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogValue {
    Nil,
    Int(i64),
    Pair(i64, i64),
}

fn parse_log_value(text: &str) -> Result<LogValue, String> {
    let int = |word: &str| {
        word.parse::<i64>()
            .map_err(|_| format!("bad register value {text:?}"))
    };
    if text == "nil" {
        return Ok(LogValue::Nil);
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match inner.split_whitespace().collect::<Vec<_>>().as_slice() {
            [old, new] => Ok(LogValue::Pair(int(old)?, int(new)?)),
            _ => Err(format!("cas value {text:?} is not [OLD NEW]")),
        };
    }
    int(text).map(LogValue::Int)
}

fn jepsen_event(
    builder: &mut HistoryBuilder<RegisterInput, RegisterOutput>,
    line: usize,
    process: u64,
    kind: EventType,
    f: &str,
    value: &str,
) -> Result<(), Error> {
    let judge = |input: &RegisterInput| -> Result<Completion<RegisterOutput>, String> {
        if register_f(input) != f.trim_start_matches(':') {
            return Err(format!(
                "completion {f} does not match invocation {input:?}"
            ));
        }
        match kind {
            EventType::Fail => Ok(Completion::Fail),
            EventType::Info => Ok(Completion::Info),
            _ => register_ok(input, parse_log_value(value)?).map(Completion::Ok),
        }
    };
    match kind {
        EventType::Invoke => {
            let input = register_input(f, value).map_err(|m| parse_error(line, m))?;
            builder.invoke(line, process, input)
        }
        _ => builder.complete(line, process, judge),
    }
}

fn register_f(input: &RegisterInput) -> &'static str {
    match input {
        RegisterInput::Read => "read",
        RegisterInput::Write(_) => "write",
        RegisterInput::Cas(..) => "cas",
    }
}

fn register_input(f: &str, value: &str) -> Result<RegisterInput, String> {
    match (f, parse_log_value(value)?) {
        (":read", LogValue::Nil) => Ok(RegisterInput::Read),
        (":write", LogValue::Int(v)) => Ok(RegisterInput::Write(v)),
        (":cas", LogValue::Pair(old, new)) => Ok(RegisterInput::Cas(old, new)),
        _ => Err(format!("bad invocation {f} {value}")),
    }
}

fn register_ok(input: &RegisterInput, value: LogValue) -> Result<RegisterOutput, String> {
    match (input, value) {
        (RegisterInput::Read, LogValue::Nil) => Ok(RegisterOutput::Read(None)),
        (RegisterInput::Read, LogValue::Int(v)) => Ok(RegisterOutput::Read(Some(v))),
        (RegisterInput::Write(w), LogValue::Int(v)) if *w == v => Ok(RegisterOutput::Write),
        (RegisterInput::Cas(o, n), LogValue::Pair(a, b)) if (*o, *n) == (a, b) => {
            Ok(RegisterOutput::Cas(true))
        }
        _ => Err(format!(
            "ok value {value:?} does not fit invocation {input:?}"
        )),
    }
}

/// One EDN value of the subset the key-value histories use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edn {
    Nil,
    Int(i64),
    Str(String),
    Keyword(String),
}

/// Parses one flat EDN map (`{:k v, :k v}`) into its keyword-value pairs.
fn parse_edn_map(text: &str) -> Result<HashMap<String, Edn>, String> {
    let mut cursor = Cursor {
        chars: text.chars().peekable(),
    };
    cursor.skip_space();
    cursor.expect('{')?;
    let mut map = HashMap::new();
    loop {
        cursor.skip_space();
        if cursor.chars.next_if_eq(&'}').is_some() {
            break;
        }
        let Edn::Keyword(key) = cursor.value()? else {
            return Err("map keys must be keywords".into());
        };
        cursor.skip_space();
        let value = cursor.value()?;
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("duplicate key :{key}"));
        }
    }
    cursor.skip_space();
    match cursor.chars.next() {
        None => Ok(map),
        Some(c) => Err(format!("unexpected {c:?} after the map")),
    }
}

/// A position in one line of EDN.
struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Cursor<'_> {
    fn skip_space(&mut self) {
        while self
            .chars
            .next_if(|c| c.is_whitespace() || *c == ',')
            .is_some()
        {}
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        match self.chars.next() {
            Some(c) if c == wanted => Ok(()),
            other => Err(format!("expected {wanted:?}, found {other:?}")),
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self
            .chars
            .next_if(|c| !c.is_whitespace() && !matches!(c, ',' | '{' | '}' | '"'))
        {
            word.push(c);
        }
        word
    }

    fn value(&mut self) -> Result<Edn, String> {
        match self.chars.peek() {
            Some('"') => self.string().map(Edn::Str),
            Some(':') => {
                self.chars.next();
                Ok(Edn::Keyword(self.word()))
            }
            Some(_) => match self.word().as_str() {
                "nil" => Ok(Edn::Nil),
                "" => Err("expected a value".into()),
                word => word
                    .parse()
                    .map(Edn::Int)
                    .map_err(|_| format!("unsupported value {word:?}")),
            },
            None => Err("unexpected end of line".into()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.chars.next() {
                Some('"') => return Ok(out),
                Some('\\') => out.push(match self.chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some(c @ ('"' | '\\')) => c,
                    other => return Err(format!("bad escape {other:?}")),
                }),
                Some(c) => out.push(c),
                None => return Err("unterminated string".into()),
            }
        }
    }
}

/// Parses a key-value history, one EDN map per line:
/// `{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append,
/// :key "K", :value V}`. Other fields are ignored; blank lines are skipped.
/// A get that completes with nil read the absent key, i.e. "".
pub fn parse_kv_history(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, Error> {
    let mut builder = HistoryBuilder::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let map = parse_edn_map(raw).map_err(|m| parse_error(line, m))?;
        kv_event(&mut builder, line, &map)?;
    }
    Ok(builder.finish())
}

fn kv_event(
    builder: &mut HistoryBuilder<KvInput, KvOutput>,
    line: usize,
    map: &HashMap<String, Edn>,
) -> Result<(), Error> {
    let field = |name: &str| {
        map.get(name)
            .ok_or_else(|| parse_error(line, format!("missing :{name}")))
    };
    let process = match field("process")? {
        Edn::Int(p) => u64::try_from(*p).map_err(|_| parse_error(line, "negative :process"))?,
        other => return Err(parse_error(line, format!("bad :process {other:?}"))),
    };
    let kind = match field("type")? {
        Edn::Keyword(word) => event_type(word).map_err(|m| parse_error(line, m))?,
        other => return Err(parse_error(line, format!("bad :type {other:?}"))),
    };
    let Edn::Keyword(f) = field("f")? else {
        return Err(parse_error(line, "bad :f"));
    };
    let key = match field("key")? {
        Edn::Str(key) => key.clone(),
        Edn::Int(key) => key.to_string(),
        other => return Err(parse_error(line, format!("bad :key {other:?}"))),
    };
    let value = map.get("value").unwrap_or(&Edn::Nil);
    match kind {
        EventType::Invoke => {
            let input = kv_input(f, key, value).map_err(|m| parse_error(line, m))?;
            builder.invoke(line, process, input)
        }
        _ => builder.complete(line, process, |input| {
            kv_completion(input, kind, f, &key, value)
        }),
    }
}

fn kv_input(f: &str, key: String, value: &Edn) -> Result<KvInput, String> {
    match (f, value) {
        ("get", _) => Ok(KvInput::Get { key }),
        ("put", Edn::Str(value)) => Ok(KvInput::Put {
            key,
            value: value.clone(),
        }),
        ("append", Edn::Str(value)) => Ok(KvInput::Append {
            key,
            value: value.clone(),
        }),
        _ => Err(format!("bad invocation :{f} with value {value:?}")),
    }
}

fn kv_completion(
    input: &KvInput,
    kind: EventType,
    f: &str,
    key: &str,
    value: &Edn,
) -> Result<Completion<KvOutput>, String> {
    let matches = match input {
        KvInput::Get { .. } => f == "get",
        KvInput::Put { .. } => f == "put",
        KvInput::Append { .. } => f == "append",
    };
    if !matches || input.key() != key {
        return Err(format!("completion :{f} {key:?} does not match {input:?}"));
    }
    match (kind, input, value) {
        (EventType::Fail, ..) => Ok(Completion::Fail),
        (EventType::Info, ..) => Ok(Completion::Info),
        (_, KvInput::Get { .. }, Edn::Nil) => Ok(Completion::Ok(KvOutput::Value(String::new()))),
        (_, KvInput::Get { .. }, Edn::Str(v)) => Ok(Completion::Ok(KvOutput::Value(v.clone()))),
        (_, KvInput::Put { value: sent, .. }, Edn::Str(v))
        | (_, KvInput::Append { value: sent, .. }, Edn::Str(v))
            if v == sent =>
        {
            Ok(Completion::Ok(KvOutput::Done))
        }
        _ => Err(format!("ok value {value:?} does not fit {input:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "INFO  jepsen.util - ";

    fn log(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{PREFIX}{l}\n")).collect()
    }

    #[test]
    fn jepsen_log_pairs_invocations_with_completions() {
        let text = log(&[
            "0\t:invoke\t:write\t3",
            "1\t:invoke\t:cas\t[3 4]",
            "0\t:ok\t:write\t3",
            "1\t:ok\t:cas\t[3 4]",
        ]);
        let ops = parse_jepsen_log(&text).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].input, RegisterInput::Write(3));
        assert_eq!((ops[0].call, ops[0].ret), (0, Some(2)));
        assert_eq!(ops[1].output, Some(RegisterOutput::Cas(true)));
    }

    #[test]
    fn jepsen_fail_drops_and_info_leaves_unknown() {
        let text = log(&[
            "0\t:invoke\t:cas\t[1 2]",
            "1\t:invoke\t:write\t5",
            "0\t:fail\t:cas\t[1 2]",
            "1\t:info\t:write\t:timed-out",
            "1\t:invoke\t:read\tnil",
        ]);
        let ops = parse_jepsen_log(&text).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].input, ops[0].ret, ops[0].output),
            (RegisterInput::Write(5), None, None)
        );
        assert_eq!((ops[1].input, ops[1].ret), (RegisterInput::Read, None));
    }

    #[test]
    fn jepsen_fields_may_be_separated_by_spaces() {
        let ops = parse_jepsen_log(&log(&["0   :invoke :cas    [1 2]"])).unwrap();
        assert_eq!(ops[0].input, RegisterInput::Cas(1, 2));
    }

    #[test]
    fn other_loggers_and_blank_lines_are_skipped() {
        let text = format!(
            "\nINFO  jepsen.core - Run complete\n{}",
            log(&["0 :invoke :read nil"])
        );
        assert_eq!(parse_jepsen_log(&text).unwrap().len(), 1);
    }

    #[test]
    fn malformed_jepsen_line_is_an_error() {
        let text = log(&["0\t:invoke\t:read\tnil", "0\t:ok\t:read"]);
        let err = parse_jepsen_log(&text).unwrap_err();
        assert!(matches!(err, Error::HistoryParse { line: 2, .. }), "{err}");
        let err = parse_jepsen_log("garbage\n").unwrap_err();
        assert!(matches!(err, Error::HistoryParse { line: 1, .. }), "{err}");
    }

    #[test]
    fn jepsen_completion_without_invocation_is_an_error() {
        let err = parse_jepsen_log(&log(&["0\t:ok\t:read\t1"])).unwrap_err();
        assert!(err.to_string().contains("no pending call"), "{err}");
    }

    #[test]
    fn jepsen_mismatched_completion_is_an_error() {
        let text = log(&["0\t:invoke\t:write\t1", "0\t:ok\t:write\t2"]);
        assert!(parse_jepsen_log(&text).is_err());
        let text = log(&["0\t:invoke\t:write\t1", "0\t:ok\t:read\t1"]);
        assert!(parse_jepsen_log(&text).is_err());
    }

    #[test]
    fn kv_history_parses_all_operation_kinds() {
        let text = concat!(
            "{:process 0, :type :invoke, :f :append, :key \"a\", :value \"x \\\"q\\\"\"}\n",
            "{:process 1, :type :invoke, :f :get, :key \"a\", :value nil}\n",
            "{:process 0, :type :ok, :f :append, :key \"a\", :value \"x \\\"q\\\"\"}\n",
            "{:process 1, :type :ok, :f :get, :key \"a\", :value nil}\n",
            "{:process 2, :type :invoke, :f :put, :key \"b\", :value \"y\"}\n",
            "{:process 2, :type :info, :f :put, :key \"b\", :value \"y\"}\n",
        );
        let ops = parse_kv_history(text).unwrap();
        assert_eq!(ops.len(), 3);
        let appended = KvInput::Append {
            key: "a".into(),
            value: "x \"q\"".into(),
        };
        assert_eq!(ops[0].input, appended);
        assert_eq!(ops[1].output, Some(KvOutput::Value(String::new())));
        assert_eq!((ops[2].ret, ops[2].output.clone()), (None, None));
    }

    #[test]
    fn malformed_kv_line_is_an_error() {
        for bad in [
            "{:process 0, :type :invoke, :f :get, :key \"a\"",
            "{:process 0, :type :invoke, :f :get}",
            "{:process x, :type :invoke, :f :get, :key \"a\", :value nil}",
            "{:process 0, :type :invoke, :f :put, :key \"a\", :value nil}",
            "{:process 0, :type :invoke, :f :get, :key \"a, :value nil}",
            "not edn",
        ] {
            let err = parse_kv_history(&format!("\n{bad}\n")).unwrap_err();
            assert!(
                matches!(err, Error::HistoryParse { line: 2, .. }),
                "{bad}: {err}"
            );
        }
    }
}
