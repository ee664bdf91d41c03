//! The recorded history and its files (EDN, one map per line, as raft-sim's jepsen parser
//! reads them).

use std::path::Path;

use crate::basics::at;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Get,
    Put(String),
    Delete,
    Incr,
}

impl OpKind {
    pub(crate) fn is_write(&self) -> bool {
        !matches!(self, OpKind::Get)
    }

    /// Method, path and body of the request for this operation on `key`.
    pub(crate) fn request(&self, key: &str) -> (&'static str, String, String) {
        let path = key_path(key);
        match self {
            OpKind::Get => ("GET", path, String::new()),
            OpKind::Put(value) => ("PUT", path, value.clone()),
            OpKind::Delete => ("DELETE", path, String::new()),
            OpKind::Incr => ("POST", format!("{path}/incr"), String::new()),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put(_) => "put",
            OpKind::Delete => "delete",
            OpKind::Incr => "incr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered: the value read ("" for an absent key) or the incr's new value; None for
    /// puts and deletes.
    Ok(Option<String>),
    /// Definitely not applied (a read without an answer counts as failed: it changed nothing).
    Fail,
    /// Unknown.
    Info,
}

/// When a resolved write took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Before the resubmission (it answered as a retry, and none of its own attempts could
    /// have applied it).
    Before,
    /// By the resubmission (it was not a retry).
    ByResubmission,
    /// Either (a resubmission attempt without an answer came before the retry's answer).
    Either,
}

/// What resubmitting a failed or indeterminate write with its ids, after the faults, found.
#[derive(Clone, Debug)]
pub(crate) struct Resolution {
    pub(crate) call: u64,
    pub(crate) ret: u64,
    pub(crate) applied: Applied,
    /// The incr's value.
    pub(crate) value: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// The Jepsen-style process: a client takes a new one after an indeterminate operation.
    pub(crate) process: u64,
    pub(crate) key: String,
    pub(crate) kind: OpKind,
    pub(crate) call: u64,
    pub(crate) ret: u64,
    pub(crate) outcome: Outcome,
    /// Client-Id and Request-Id of a write.
    pub(crate) ids: Option<(u64, u64)>,
    /// The node of the last attempt.
    pub(crate) node: u64,
    pub(crate) attempts: u32,
    pub(crate) resolution: Option<Resolution>,
    /// A read sent as `?consistency=lease`.
    pub(crate) lease: bool,
}

impl Record {
    /// Method, path and body of the operation's request.
    pub(crate) fn request(&self) -> (&'static str, String, String) {
        self.kind.request(&self.key)
    }

    /// The effective interval and output of a write, counting its resolution: None when it
    /// is still unknown (it may have taken effect at any time after its call, or never).
    pub(crate) fn effect(&self) -> Option<(u64, u64, Option<String>)> {
        match (&self.outcome, &self.resolution) {
            (Outcome::Ok(value), _) => Some((self.call, self.ret, value.clone())),
            (_, Some(resolution)) => {
                let call = if resolution.applied == Applied::ByResubmission {
                    resolution.call
                } else {
                    self.call
                };
                Some((call, resolution.ret, resolution.value.clone()))
            }
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        let value = match &self.kind {
            OpKind::Put(value) => format!(" {value:?}"),
            _ => String::new(),
        };
        let outcome = match &self.outcome {
            Outcome::Ok(Some(v)) => format!("ok {v:?}"),
            Outcome::Ok(None) => "ok".to_owned(),
            Outcome::Fail => "fail".to_owned(),
            Outcome::Info => "info".to_owned(),
        };
        let ids = self
            .ids
            .map_or(String::new(), |(c, r)| format!(", ids {c}/{r}"));
        let resolution = self.resolution.as_ref().map_or(String::new(), |r| {
            format!(
                " | resubmitted [{} .. {}]: applied {:?}{}",
                at(r.call),
                at(r.ret),
                r.applied,
                r.value
                    .as_ref()
                    .map_or(String::new(), |v| format!(" {v:?}"))
            )
        });
        format!(
            "[{} .. {}] p{} {} {}{} -> {} (node {}, {} attempt(s){ids}){resolution}",
            at(self.call),
            at(self.ret),
            self.process,
            if self.lease {
                "get(lease)"
            } else {
                self.kind.name()
            },
            self.key,
            value,
            outcome,
            self.node,
            self.attempts,
        )
    }
}

pub(crate) fn parse_count(value: Option<&String>) -> Option<i64> {
    match value.map(String::as_str) {
        None | Some("") => Some(0),
        Some(text) => text.parse().ok(),
    }
}

pub(crate) fn key_path(key: &str) -> String {
    format!("/kv/{key}")
}

pub(crate) fn register_key(i: u64) -> String {
    format!("r{i}")
}

pub(crate) fn counter_key(i: u64) -> String {
    format!("c{i}")
}

pub(crate) fn is_counter(key: &str) -> bool {
    key.starts_with('c')
}

pub(crate) fn edn_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the registers' history (readable by `raft_sim::linearizability::jepsen::
/// parse_kv_history`; a delete is a put of "") and the counters' history.
/// The EDN process numbers of resubmissions start here (plus the record's index).
const RESUBMISSION_PROCESS: u64 = 20_000_000;

pub(crate) fn write_histories(records: &[Record], dir: &Path) -> Result<(), String> {
    let mut kv = Vec::new();
    let mut counters = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let (f, value) = match &record.kind {
            OpKind::Get => ("get", None),
            OpKind::Put(value) => ("put", Some(edn_string(value))),
            OpKind::Delete => ("put", Some(edn_string(""))),
            OpKind::Incr => ("incr", None),
        };
        let invoke_value = value.clone().unwrap_or_else(|| "nil".to_owned());
        let (kind, done_value) = match &record.outcome {
            Outcome::Ok(read) => {
                let read = match (&record.kind, read) {
                    (OpKind::Get | OpKind::Incr, Some(v)) if is_counter(&record.key) => {
                        parse_count(Some(v)).map_or_else(|| edn_string(v), |n| n.to_string())
                    }
                    (OpKind::Get, Some(v)) => edn_string(v),
                    _ => invoke_value.clone(),
                };
                (":ok", read)
            }
            Outcome::Fail => (":fail", invoke_value.clone()),
            Outcome::Info => (":info", invoke_value.clone()),
        };
        let extra = match &record.resolution {
            Some(r) => format!(
                ", :resubmitted {}, :applied :{:?}{}",
                r.ret,
                r.applied,
                r.value.as_ref().map_or(String::new(), |v| format!(
                    ", :resubmitted-value {}",
                    edn_string(v)
                ))
            ),
            None => String::new(),
        };
        let mut ids = record.ids.map_or(String::new(), |(c, r)| {
            format!(", :client-id {c}, :request-id {r}")
        });
        if record.lease {
            ids.push_str(", :consistency :lease");
        }
        let invoke = format!(
            "{{:process {}, :type :invoke, :f :{f}, :key {}, :value {invoke_value}, :time {}{ids}}}",
            record.process,
            edn_string(&record.key),
            record.call
        );
        let complete = format!(
            "{{:process {}, :type {kind}, :f :{f}, :key {}, :value {done_value}, :time {}, :node {}{ids}{extra}}}",
            record.process,
            edn_string(&record.key),
            record.ret,
            record.node
        );
        let events = if is_counter(&record.key) {
            &mut counters
        } else {
            &mut kv
        };
        events.push((record.call, 0u8, invoke));
        events.push((record.ret, 1u8, complete));
        // A write applied only by its resubmission is one more operation, at that time (one
        // applied before stays unknown above: the resubmission applied nothing).
        if let Some(r) = &record.resolution
            && r.applied == Applied::ByResubmission
        {
            let process = RESUBMISSION_PROCESS + index as u64;
            let done_value = match (&record.kind, &r.value) {
                (OpKind::Incr, Some(v)) => {
                    parse_count(Some(v)).map_or_else(|| edn_string(v), |n| n.to_string())
                }
                _ => invoke_value.clone(),
            };
            let key = edn_string(&record.key);
            events.push((
                r.call,
                0,
                format!(
                    "{{:process {process}, :type :invoke, :f :{f}, :key {key}, :value {invoke_value}, :time {}, :resubmission-of {}{ids}}}",
                    r.call, record.process
                ),
            ));
            events.push((
                r.ret,
                1,
                format!(
                    "{{:process {process}, :type :ok, :f :{f}, :key {key}, :value {done_value}, :time {}, :resubmission-of {}{ids}}}",
                    r.ret, record.process
                ),
            ));
        }
    }
    for (events, name) in [
        (&mut kv, "history-kv.edn"),
        (&mut counters, "history-counters.edn"),
    ] {
        events.sort();
        let mut text = String::new();
        for (_, _, line) in events.iter() {
            text.push_str(line);
            text.push('\n');
        }
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
