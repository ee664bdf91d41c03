//! The `kv` workload's cluster: 3 `raft-kv serve` processes on loopback, as an operator runs
//! them (the flags of raft-kv/tests/process.rs), each with a durable log (raft-storage-fs,
//! fsync) in its own directory under a temporary directory. The processes are killed and the
//! directory removed when the cluster is dropped, on any way out.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Nodes of the cluster.
pub(crate) const NODES: usize = 3;

/// The running processes and their data.
#[derive(Debug)]
pub(crate) struct KvProcesses {
    /// Each node's `HOST:PORT`, in id order.
    pub(crate) addresses: Vec<String>,
    /// The processes, killed on drop.
    children: Vec<Child>,
    /// The nodes' data directories, removed on drop (after the processes: fields drop in
    /// order).
    _dir: tempfile::TempDir,
}

impl KvProcesses {
    /// Starts `binary serve` three times (ids 1, 2, 3) on free loopback ports, data under a
    /// new temporary directory in `dir` (the system's by default), logging errors only to
    /// this process's stderr. Returns once spawned, not once a leader is elected.
    pub(crate) fn start(
        binary: &Path,
        dir: Option<&Path>,
        settings: &ServeSettings,
    ) -> Result<KvProcesses, String> {
        let data = match dir {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("cannot create a data directory: {e}"))?;
        let addresses = free_addresses(NODES)?;
        let mut children = Vec::new();
        for id in 1..=NODES {
            let mut command = Command::new(binary);
            command.args(serve_args(
                id,
                &addresses,
                &data.path().join(format!("node-{id}")),
                settings,
            ));
            command
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            let child = command
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
            children.push(child);
        }
        Ok(KvProcesses {
            addresses,
            children,
            _dir: data,
        })
    }

    /// The client endpoints, `http://HOST:PORT`.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|address| format!("http://{address}"))
            .collect()
    }

    /// An error if a process has exited (a failed bind, a bad flag).
    pub(crate) fn check_running(&mut self) -> Result<(), String> {
        for (index, child) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("raft-kv node {} exited: {status}", index + 1));
            }
        }
        Ok(())
    }

    /// Kills the processes (SIGKILL; their data is thrown away) and waits for them.
    pub(crate) async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

/// What every node of the benchmark's cluster is started with.
#[derive(Clone, Debug)]
pub(crate) struct ServeSettings {
    /// `--snapshot-threshold`.
    pub(crate) snapshot_threshold: u64,
    /// `--replication`: `streaming` or `pipelined`.
    pub(crate) replication: &'static str,
    /// `--worker-threads` of each process.
    pub(crate) worker_threads: u16,
}

/// Worker threads per node when the machine's cores are divided among the cluster's
/// [`NODES`] processes (at least one each), as nodes sharing a machine should be run.
pub(crate) fn shared_machine_worker_threads() -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u16::try_from(cores / NODES).unwrap_or(u16::MAX).max(1)
}

/// The arguments of `raft-kv serve` for node `id` (1-based) of the cluster at `addresses`.
pub(crate) fn serve_args(
    id: usize,
    addresses: &[String],
    data_dir: &Path,
    settings: &ServeSettings,
) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        "--id".to_owned(),
        id.to_string(),
        "--listen".to_owned(),
        addresses.get(id - 1).cloned().unwrap_or_default(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--snapshot-threshold".to_owned(),
        settings.snapshot_threshold.to_string(),
        "--replication".to_owned(),
        settings.replication.to_owned(),
        "--worker-threads".to_owned(),
        settings.worker_threads.to_string(),
    ];
    for (index, address) in addresses.iter().enumerate() {
        if index + 1 != id {
            args.push("--peer".to_owned());
            args.push(format!("{}={address}", index + 1));
        }
    }
    args
}

/// `--kv-binary`, or `raft-kv` next to this program (target/release holds both after
/// `cargo build --release -p raft-kv -p raft-bench`).
pub(crate) fn kv_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let sibling = exe.with_file_name(format!("raft-kv{}", std::env::consts::EXE_SUFFIX));
    if sibling.is_file() {
        Ok(sibling)
    } else {
        Err(format!(
            "no {} (build it with `cargo build --release -p raft-kv`, or pass --kv-binary)",
            sibling.display()
        ))
    }
}

/// `n` loopback addresses with free ports (bound together, then released for the nodes).
fn free_addresses(n: usize) -> Result<Vec<String>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot bind loopback: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no local address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_names_the_others_as_peers() {
        let addresses: Vec<String> = ["a:1", "b:2", "c:3"].map(str::to_owned).to_vec();
        let settings = ServeSettings {
            snapshot_threshold: 0,
            replication: "streaming",
            worker_threads: 1,
        };
        let args = serve_args(2, &addresses, Path::new("/d/node-2"), &settings);
        let line = args.join(" ");
        assert_eq!(
            line,
            "serve --id 2 --listen b:2 --data-dir /d/node-2 --snapshot-threshold 0 \
             --replication streaming --worker-threads 1 --peer 1=a:1 --peer 3=c:3"
        );
        assert_eq!(free_addresses(3).map(|a| a.len()), Ok(3));
    }
}
