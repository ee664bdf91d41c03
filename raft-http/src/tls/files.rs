//! TLS material read from PEM files, and kept current: a [`Reloadable`] holds the rustls
//! configuration built from a set of files, rebuilds it on [`reload`](Reloadable::reload), and a
//! watch task reloads it when the files' contents change.
//!
//! A reload reads every file, builds a whole new configuration and only then swaps it in: a
//! failure (a missing file, a key that does not match the certificate, a certificate that does
//! not name this node) keeps the configuration in force. Connections take the configuration in
//! force when they start; a swap never touches an open connection.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::error::Error;

/// The contents of a configuration's files, in the order they were listed.
pub(crate) struct Contents {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Contents {
    /// Every file read; the first failure is the error.
    fn read(paths: &[PathBuf]) -> Result<Contents, Error> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::Tls(format!("cannot read {}: {e}", path.display())))?;
            files.push((path.clone(), bytes));
        }
        Ok(Contents { files })
    }

    /// The file at `index` in the list: its path and bytes.
    fn file(&self, index: usize) -> Result<(&Path, &[u8]), Error> {
        self.files
            .get(index)
            .map(|(path, bytes)| (path.as_path(), bytes.as_slice()))
            .ok_or_else(|| Error::Tls(format!("no TLS file number {index}")))
    }

    /// Every certificate in file `index` (a chain: the node's own first).
    pub(crate) fn certificates(
        &self,
        index: usize,
        what: &str,
    ) -> Result<Vec<CertificateDer<'static>>, Error> {
        let (path, bytes) = self.file(index)?;
        let certificates = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("{what} {}: not PEM: {e}", path.display())))?;
        if certificates.is_empty() {
            return Err(Error::Tls(format!(
                "{what} {}: no CERTIFICATE in it",
                path.display()
            )));
        }
        Ok(certificates)
    }

    /// The private key in file `index` (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn private_key(&self, index: usize) -> Result<PrivateKeyDer<'static>, Error> {
        let (path, bytes) = self.file(index)?;
        PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
            Error::Tls(format!(
                "private key {}: no PEM private key in it ({e})",
                path.display()
            ))
        })
    }

    /// The trust anchors in file `index` (one or more CA certificates).
    pub(crate) fn roots(&self, index: usize, what: &str) -> Result<RootCertStore, Error> {
        let (path, _) = self.file(index)?;
        let mut roots = RootCertStore::empty();
        for certificate in self.certificates(index, what)? {
            roots.add(certificate).map_err(|e| {
                Error::Tls(format!(
                    "{what} {}: not a usable CA certificate: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(roots)
    }

    /// The path of file `index`, for messages.
    pub(crate) fn path(&self, index: usize) -> String {
        self.file(index)
            .map(|(path, _)| path.display().to_string())
            .unwrap_or_default()
    }

    /// One fingerprint per file, to notice a change.
    fn fingerprints(&self, hasher: &RandomState) -> Vec<u64> {
        self.files
            .iter()
            .map(|(_, bytes)| hasher.hash_one(bytes))
            .collect()
    }
}

/// Builds a configuration from the files' contents.
type Build<T> = Box<dyn Fn(&Contents) -> Result<T, Error> + Send + Sync>;

/// A configuration built from files, swapped for a new one on each successful reload.
pub(crate) struct Reloadable<T> {
    /// What it is, for messages ("server TLS", "client TLS").
    what: &'static str,
    paths: Vec<PathBuf>,
    build: Build<T>,
    current: RwLock<Arc<T>>,
    /// What the files held at the last attempt (`None`: unreadable), to reload on a change only.
    seen: Mutex<Option<Vec<u64>>>,
    hasher: RandomState,
}

impl<T> fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    /// Reads the files and builds the first configuration.
    pub(crate) fn load(
        what: &'static str,
        paths: Vec<PathBuf>,
        build: impl Fn(&Contents) -> Result<T, Error> + Send + Sync + 'static,
    ) -> Result<Arc<Reloadable<T>>, Error> {
        let hasher = RandomState::new();
        let contents = Contents::read(&paths)?;
        let first = build(&contents)?;
        Ok(Arc::new(Reloadable {
            what,
            paths,
            build: Box::new(build),
            current: RwLock::new(Arc::new(first)),
            seen: Mutex::new(Some(contents.fingerprints(&hasher))),
            hasher,
        }))
    }

    /// The configuration in force.
    pub(crate) fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The files it is built from.
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads the files again and swaps in the new configuration; on failure the one in force
    /// stays.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let contents = self.read_and_remember()?;
        self.rebuild(&contents)
    }

    /// Reloads if a file's contents changed since the last attempt: `Ok(true)` after a reload.
    /// A failed attempt is not repeated until a file changes again.
    fn reload_if_changed(&self) -> Result<bool, Error> {
        let contents = Contents::read(&self.paths);
        let fingerprints = contents.as_ref().ok().map(|c| c.fingerprints(&self.hasher));
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == fingerprints {
                return Ok(false);
            }
            *seen = fingerprints;
        }
        self.rebuild(&contents?)?;
        Ok(true)
    }

    fn read_and_remember(&self) -> Result<Contents, Error> {
        let contents = Contents::read(&self.paths);
        let fingerprints = contents.as_ref().ok().map(|c| c.fingerprints(&self.hasher));
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = fingerprints;
        contents
    }

    fn rebuild(&self, contents: &Contents) -> Result<(), Error> {
        let next = Arc::new((self.build)(contents)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        info!(what = self.what, files = ?self.paths, "TLS certificates reloaded");
        Ok(())
    }

    /// Starts a task on the current tokio runtime that checks the files every `every` and
    /// reloads on a change; it ends when the last handle to this configuration is dropped.
    pub(crate) fn watch(self: &Arc<Self>, every: Duration) -> Result<(), Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("watching TLS files needs a tokio runtime".to_owned()))?;
        if every.is_zero() {
            return Err(Error::Config(
                "the TLS reload interval must be over zero".to_owned(),
            ));
        }
        let weak: Weak<Reloadable<T>> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(watched) = weak.upgrade() else {
                    break;
                };
                let what = watched.what;
                // File reads block: off the runtime's threads (a slow network disk stalls
                // only this check).
                let checked = tokio::task::spawn_blocking(move || watched.reload_if_changed());
                match checked.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => warn!(
                        what,
                        %error,
                        "TLS files changed but cannot be used; keeping the certificates in force"
                    ),
                    Err(error) => warn!(what, %error, "the TLS file check failed"),
                }
            }
        });
        Ok(())
    }
}
