//! The application's own state machine: a bank ledger, accounts and their balances.
//!
//! Commands are text: `deposit ACCOUNT AMOUNT` and `transfer FROM TO AMOUNT`. Each committed
//! entry gets exactly one result: `ok BALANCE` (the new balance of the account deposited to or
//! debited), `insufficient funds`, or `error: ...`. A command the ledger refuses is a result,
//! never an `Err`: an error from `commit` would stop the node, and every replica must apply the
//! same log alike.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::{
    BytesSource, Entry, Error, Payload, SnapshotReader, SnapshotSource, StateMachine, read_to_vec,
};

/// Balances by account name (names hold no whitespace).
pub(crate) type Accounts = BTreeMap<String, i64>;

/// A parsed command.
pub(crate) enum Command {
    Deposit {
        account: String,
        amount: i64,
    },
    Transfer {
        from: String,
        to: String,
        amount: i64,
    },
}

impl Command {
    pub(crate) fn parse(text: &str) -> Result<Command, String> {
        let amount = |word: &str| match word.parse::<i64>() {
            Ok(amount) if amount > 0 => Ok(amount),
            _ => Err(format!("{word:?} is not a positive amount")),
        };
        match text.split_whitespace().collect::<Vec<_>>()[..] {
            ["deposit", account, n] => Ok(Command::Deposit {
                account: account.to_owned(),
                amount: amount(n)?,
            }),
            ["transfer", from, to, n] if from != to => Ok(Command::Transfer {
                from: from.to_owned(),
                to: to.to_owned(),
                amount: amount(n)?,
            }),
            _ => Err(format!(
                "{text:?}: expected `deposit ACCOUNT AMOUNT` or `transfer FROM TO AMOUNT`"
            )),
        }
    }
}

/// Applies one command to `accounts` and returns its result. Deterministic: the same on every
/// replica (and in the demo's replay).
pub(crate) fn apply(accounts: &mut Accounts, text: &str) -> String {
    match Command::parse(text) {
        Err(reason) => format!("error: {reason}"),
        Ok(Command::Deposit { account, amount }) => {
            let balance = accounts.entry(account).or_default();
            match balance.checked_add(amount) {
                Some(sum) => {
                    *balance = sum;
                    format!("ok {sum}")
                }
                None => "error: balance overflow".to_owned(),
            }
        }
        Ok(Command::Transfer { from, to, amount }) => {
            let available = accounts.get(&from).copied().unwrap_or(0);
            let credited = accounts.get(&to).copied().unwrap_or(0).checked_add(amount);
            match credited {
                _ if available < amount => "insufficient funds".to_owned(),
                None => "error: balance overflow".to_owned(),
                Some(credited) => {
                    accounts.insert(from, available - amount);
                    accounts.insert(to, credited);
                    format!("ok {}", available - amount)
                }
            }
        }
    }
}

/// The replicated ledger. Clones share the accounts (the node applies, the API reads).
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    accounts: Arc<Mutex<Accounts>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This replica's balances, as applied so far.
    pub(crate) fn balances(&self) -> Accounts {
        self.lock().clone()
    }
}

#[async_trait]
impl StateMachine for Ledger {
    // `pre_commit` and `rollback` keep their defaults: the ledger changes on commit only.

    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let mut accounts = self.lock();
        // One result per entry, blanks and membership changes included (a leader's no-op, a
        // retry the session layer answered): a different count stops the node.
        let results = entries.iter().map(|entry| match &entry.payload {
            Payload::Blank | Payload::Membership(_) => Bytes::new(),
            Payload::Command(command) => {
                Bytes::from(apply(&mut accounts, &String::from_utf8_lossy(command)))
            }
        });
        Ok(results.collect())
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        // Fix the view now, between two commits: for a few accounts the encoding is as cheap as
        // a copy. A large state would clone a persistent map here and encode it in the source.
        let encoded: String = self
            .lock()
            .iter()
            .map(|(a, b)| format!("{a} {b}\n"))
            .collect();
        Ok(Box::new(BytesSource::new(Bytes::from(encoded), 64 << 10)))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let data = read_to_vec(snapshot.as_ref(), 64 << 10).await?; // checked against its meta
        let text = String::from_utf8(data).map_err(Error::state_machine)?;
        let mut accounts = Accounts::new();
        for line in text.lines() {
            let parsed = line.split_once(' ').map(|(a, b)| (a, b.parse::<i64>()));
            let Some((account, Ok(balance))) = parsed else {
                return Err(Error::state_machine(format!("bad snapshot line {line:?}")));
            };
            accounts.insert(account.to_owned(), balance);
        }
        *self.lock() = accounts;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raft_core::LogId;
    use raft_core::testing::snapshots;

    use super::*;

    fn entry(index: u64, command: Option<&str>) -> Entry {
        let payload = command.map_or(Payload::Blank, |c| {
            Payload::Command(Bytes::from(c.to_owned()))
        });
        Entry {
            log_id: LogId::new(1, index),
            payload,
        }
    }

    #[tokio::test]
    async fn one_result_per_entry_and_snapshots_round_trip() {
        let ledger = Ledger::default();
        let entries = [
            entry(1, None),
            entry(2, Some("deposit alice 100")),
            entry(3, Some("transfer alice bob 30")),
            entry(4, Some("transfer bob alice 31")),
            entry(5, Some("withdraw alice 5")),
        ];
        let results = ledger.commit(&entries).await.unwrap();
        let results: Vec<_> = results.iter().map(|r| String::from_utf8_lossy(r)).collect();
        assert_eq!(results[..4], ["", "ok 100", "ok 70", "insufficient funds"]);
        assert!(results[4].starts_with("error: "), "{}", results[4]);

        let data = snapshots::drain(ledger.snapshot().await.unwrap().as_mut())
            .await
            .unwrap();
        let restored = Ledger::default();
        restored
            .restore(snapshots::reader(LogId::new(1, 5), data))
            .await
            .unwrap();
        assert_eq!(restored.balances(), ledger.balances());
        assert_eq!(restored.balances().values().sum::<i64>(), 100);
    }
}
