//! Certificates without hands: for each TLS listener with an `[listener.tls.acme]` section, a
//! task that keeps its certificate obtained and renewed over ACME (RFC 8555).
//!
//! The task's loop: serve what storage has (at start, and whenever another instance sharing
//! the directory renewed); wait until renewal is due (the CA's ARI window when it offers one,
//! else two thirds of the lifetime, with jitter), a failed order's backoff is over, or an
//! operator asked (`POST /acme/renew`); take the storage lock (another instance holding it is
//! ordering for both: its result is picked up); order; store; swap the certificate in for new
//! handshakes. A failure keeps the old certificate serving and is retried with exponential
//! backoff from `retry` up to an hour, never sooner than the CA's Retry-After.

mod order;
mod schedule;
mod store;

use crate::config::{AcmeConfig, ListenerConfig};
use crate::metrics::Metrics;
use crate::tls::{AcmeSource, Answers, LoadedCert, Obtained, TlsError};
use instant_acme::{Account, CertificateIdentifier};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// While another instance holds the lock, how often storage is looked at for its result.
const LOCK_POLL: Duration = Duration::from_secs(1);

/// Why an order (or the storage around it) failed. The task logs it and retries.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The account could not be created or restored.
    #[error("ACME account: {0}")]
    Account(instant_acme::Error),
    /// The stored account file is not usable.
    #[error("stored ACME account unreadable: {0}")]
    AccountFile(String),
    /// The CA refused or failed a step of the order.
    #[error("ACME order: {0}")]
    Order(instant_acme::Error),
    /// The CA offered none of the challenge types configured for `name`.
    #[error("the CA offers none of the configured challenges for `{0}`")]
    NoChallenge(String),
    /// Validation failed.
    #[error("ACME validation failed: {0}")]
    Invalid(String),
    /// A key or CSR could not be made.
    #[error("key generation: {0}")]
    Key(rcgen::Error),
    /// A certificate could not be built.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The stored (or just issued) certificate does not load.
    #[error("certificate does not load: {0}")]
    Stored(TlsError),
    /// The storage directory could not be read or written.
    #[error("{path}: {source}")]
    Storage {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// No listener of that name has an ACME section.
    #[error("no listener named `{0}` obtains its certificate over ACME")]
    UnknownListener(String),
}

impl AcmeError {
    /// Whether the CA no longer knows the stored account (a test CA restarted, an account
    /// deactivated): a new one is made at the next try.
    fn account_unknown(&self) -> bool {
        matches!(
            self,
            AcmeError::Order(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
        )
    }

    /// When the CA asked to be asked again, if it did.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Order(instant_acme::Error::Timeout(Some(at))) => {
                Some(at.saturating_duration_since(std::time::Instant::now()))
            }
            _ => None,
        }
    }
}

/// One listener's ACME state.
struct Managed {
    config: Arc<AcmeConfig>,
    obtained: Arc<Obtained>,
    renew: Arc<Notify>,
    stop: CancellationToken,
}

/// A section's certificate cell made for a config being prepared.
type Prepared = (Arc<AcmeConfig>, Arc<Obtained>);

/// Every ACME section of the running config, and the challenge answers they share.
pub struct Acme {
    metrics: Arc<Metrics>,
    answers: Arc<Answers>,
    stop: CancellationToken,
    /// By listener name: those running.
    running: Mutex<HashMap<String, Managed>>,
    /// By listener name: made by `source` for a config not yet switched to.
    prepared: Mutex<HashMap<String, Prepared>>,
}

impl Acme {
    /// No section yet; every task stops with `stop`.
    pub fn new(metrics: Arc<Metrics>, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            answers: Arc::new(Answers::default()),
            stop,
            running: Mutex::default(),
            prepared: Mutex::default(),
        })
    }

    /// The challenge answers, for the HTTP-01 route.
    pub fn answers(&self) -> Arc<Answers> {
        Arc::clone(&self.answers)
    }

    /// What `listener`'s handshakes read: its running state when its section is unchanged,
    /// else a new one holding what storage has (so a restart serves at once).
    pub fn source(&self, listener: &str, config: &Arc<AcmeConfig>) -> AcmeSource {
        let running = lock(&self.running);
        let obtained = match running.get(listener) {
            Some(m) if m.config == *config => Arc::clone(&m.obtained),
            _ => {
                let obtained = Arc::new(Obtained::new(config.names.clone()));
                if let Some(cert) = stored(listener, &Store::new(config)) {
                    obtained.install(Arc::new(cert));
                }
                lock(&self.prepared).insert(
                    listener.to_string(),
                    (Arc::clone(config), Arc::clone(&obtained)),
                );
                obtained
            }
        };
        AcmeSource {
            obtained,
            answers: Arc::clone(&self.answers),
        }
    }

    /// Runs one task per ACME section of `listeners` (after they were switched to): new and
    /// changed sections start, removed ones stop.
    pub fn sync(&self, listeners: &[ListenerConfig]) {
        let wanted: HashMap<&str, &Arc<AcmeConfig>> = listeners
            .iter()
            .filter_map(|l| Some((l.name.as_str(), l.tls.as_ref()?.acme.as_ref()?)))
            .collect();
        self.answers.share(
            wanted
                .values()
                .map(|config| Store::new(config).challenges())
                .collect(),
        );
        let mut running = lock(&self.running);
        let mut prepared = lock(&self.prepared);
        running.retain(|name, managed| {
            let keep = wanted.get(name.as_str()) == Some(&&managed.config);
            if !keep {
                managed.stop.cancel();
                self.metrics
                    .control
                    .acme_next_renewal
                    .remove_label_values(&[name])
                    .ok();
            }
            keep
        });
        for (name, config) in wanted {
            if running.contains_key(name) {
                continue;
            }
            let obtained = match prepared.remove(name) {
                Some((c, obtained)) if c == *config => obtained,
                _ => Arc::new(Obtained::new(config.names.clone())),
            };
            let managed = Managed {
                config: Arc::clone(config),
                obtained,
                renew: Arc::new(Notify::new()),
                stop: self.stop.child_token(),
            };
            for result in ["issued", "failed"] {
                self.metrics
                    .control
                    .acme_orders
                    .with_label_values(&[name, result]);
            }
            tokio::spawn(
                Task {
                    listener: name.to_string(),
                    config: Arc::clone(config),
                    store: Store::new(config),
                    obtained: Arc::clone(&managed.obtained),
                    answers: Arc::clone(&self.answers),
                    metrics: Arc::clone(&self.metrics),
                    renew: Arc::clone(&managed.renew),
                    stop: managed.stop.clone(),
                }
                .run(),
            );
            running.insert(name.to_string(), managed);
        }
        prepared.clear();
    }

    /// Asks `listener`'s task (every ACME listener's, with `None`) to order now; returns the
    /// listeners asked.
    pub fn renew_now(&self, listener: Option<&str>) -> Result<Vec<String>, AcmeError> {
        let running = lock(&self.running);
        let mut asked: Vec<String> = running
            .iter()
            .filter(|(name, _)| listener.is_none_or(|l| l == name.as_str()))
            .map(|(name, managed)| {
                managed.renew.notify_one();
                name.clone()
            })
            .collect();
        if let (Some(name), true) = (listener, asked.is_empty()) {
            return Err(AcmeError::UnknownListener(name.to_string()));
        }
        asked.sort();
        Ok(asked)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The certificate in `store`, or `None` (logged) when it is missing or unusable.
fn stored(listener: &str, store: &Store) -> Option<LoadedCert> {
    store
        .certificate()
        .map_err(|e| tracing::warn!(listener, error = %e, "stored ACME certificate ignored"))
        .ok()
        .flatten()
}

/// One listener's certificate, kept.
struct Task {
    listener: String,
    config: Arc<AcmeConfig>,
    store: Store,
    obtained: Arc<Obtained>,
    answers: Arc<Answers>,
    metrics: Arc<Metrics>,
    renew: Arc<Notify>,
    stop: CancellationToken,
}

/// A CA's suggested renewal window, and when to ask for it again.
struct Ari {
    start: i64,
    end: i64,
    ask_again: Duration,
}

/// Why the task woke up.
enum Wake {
    Due,
    Asked,
    Stop,
}

/// Where the task stands between two orders.
#[derive(Default)]
struct Pace {
    /// Failed orders in a row.
    failures: u32,
    /// After a failure: when to try again.
    retry_at: Option<i64>,
    /// After a success: no order before this, whatever the certificate says (a CA issuing
    /// certificates that are due at once must not be asked in a loop).
    earliest: i64,
}

impl Task {
    async fn run(self) {
        let jitter = fastrand::f64();
        let mut pace = Pace::default();
        let mut account: Option<Account> = None;
        loop {
            self.pick_up_stored();
            let (due, recheck) = match pace.retry_at {
                Some(at) => (at, None),
                None => {
                    let (due, recheck) = self.renewal_due(jitter, &mut account).await;
                    (due.max(pace.earliest), recheck)
                }
            };
            self.metrics
                .control
                .acme_next_renewal
                .with_label_values(&[&self.listener])
                .set(due);
            match self.wait_until(recheck.map_or(due, |r| r.min(due))).await {
                Wake::Stop => return,
                Wake::Asked => tracing::info!(listener = %self.listener, "ACME renewal asked for"),
                // Time to ask the CA's window again (it may have moved it earlier).
                Wake::Due if crate::clock::unix_secs() < due => continue,
                Wake::Due => {
                    // Another instance may have renewed while this one waited.
                    if pace.retry_at.is_none()
                        && self.pick_up_stored()
                        && self.renewal_due(jitter, &mut account).await.0
                            > crate::clock::unix_secs()
                    {
                        continue;
                    }
                }
            }
            // A reload that drops or changes the section stops an order in flight too.
            let ordered = tokio::select! {
                () = self.stop.cancelled() => return,
                ordered = self.order_once(&mut account) => ordered,
            };
            let now = crate::clock::unix_secs();
            pace = match ordered {
                Ok(()) => Pace {
                    earliest: now + self.config.retry.as_secs() as i64,
                    ..Pace::default()
                },
                Err(e) => self.failed(&e, pace.failures.saturating_add(1), &mut account, now),
            };
        }
    }

    /// Logs and counts the `failures`-th failed order in a row; the pace after it.
    fn failed(
        &self,
        e: &AcmeError,
        failures: u32,
        account: &mut Option<Account>,
        now: i64,
    ) -> Pace {
        if e.account_unknown() {
            *account = None;
            if let Err(e) = self.store.forget_account() {
                tracing::warn!(listener = %self.listener, error = %e, "stale ACME account file not removed");
            }
        }
        let wait = schedule::backoff(self.config.retry, failures, e.retry_after());
        tracing::error!(
            listener = %self.listener,
            error = %e,
            failures,
            retry_in = ?wait,
            "ACME order failed; the current certificate (if any) keeps serving"
        );
        self.count("failed");
        Pace {
            failures,
            retry_at: Some(now + wait.as_secs() as i64),
            earliest: 0,
        }
    }

    /// Installs the stored certificate when it differs from the one served; whether it did.
    fn pick_up_stored(&self) -> bool {
        let Some(cert) = stored(&self.listener, &self.store) else {
            return false;
        };
        let serving = self.obtained.get();
        if serving.is_some_and(|s| s.serial == cert.serial) {
            return false;
        }
        tracing::info!(listener = %self.listener, serial = %cert.serial, "ACME certificate loaded from storage");
        self.install(Arc::new(cert));
        true
    }

    fn install(&self, cert: Arc<LoadedCert>) {
        let name = cert.names.first().map_or("", String::as_str);
        self.metrics
            .control
            .tls_certificate_expiry
            .with_label_values(&[&self.listener, name])
            .set(cert.not_after);
        self.obtained.install(cert);
    }

    /// When the served certificate should be replaced: now when there is none or it lacks
    /// a configured name; else in the CA's ARI window if it offers one; else at two thirds of
    /// its lifetime. With ARI, also when to ask for the window again.
    async fn renewal_due(&self, jitter: f64, account: &mut Option<Account>) -> (i64, Option<i64>) {
        let now = crate::clock::unix_secs();
        let Some(cert) = self.obtained.get() else {
            return (now, None);
        };
        if !self
            .config
            .names
            .iter()
            .all(|n| crate::tls::covers(&cert.names, n))
        {
            return (now, None);
        }
        match self.ari_window(&cert, account).await {
            Some(ari) => (
                schedule::within_window(ari.start, ari.end, jitter),
                Some(now + ari.ask_again.as_secs() as i64),
            ),
            None => (
                schedule::renewal_at(cert.not_before, cert.not_after, jitter),
                None,
            ),
        }
    }

    /// The CA's suggested renewal window (RFC 9773), when it offers ARI and answers in time.
    async fn ari_window(&self, cert: &LoadedCert, account: &mut Option<Account>) -> Option<Ari> {
        let id = CertificateIdentifier::try_from(cert.key.cert.first()?).ok()?;
        let ask = async {
            let account = self.account(account).await.ok()?;
            account.renewal_info(&id).await.ok()
        };
        let (info, retry_after) = tokio::time::timeout(Duration::from_secs(10), ask)
            .await
            .ok()
            .flatten()?;
        let window = info.suggested_window;
        Some(Ari {
            start: window.start.unix_timestamp(),
            end: window.end.unix_timestamp(),
            ask_again: schedule::ari_recheck(retry_after),
        })
    }

    async fn account<'a>(&self, slot: &'a mut Option<Account>) -> Result<&'a Account, AcmeError> {
        if slot.is_none() {
            *slot = Some(order::account(&self.config, &self.store).await?);
        }
        Ok(slot.as_ref().expect("just set"))
    }

    async fn wait_until(&self, due: i64) -> Wake {
        let wait = Duration::from_secs(due.saturating_sub(crate::clock::unix_secs()).max(0) as u64);
        tokio::select! {
            () = self.stop.cancelled() => Wake::Stop,
            () = self.renew.notified() => Wake::Asked,
            () = tokio::time::sleep(wait) => Wake::Due,
        }
    }

    /// Takes the lock (or waits for the instance holding it and picks up its result), orders,
    /// stores and installs.
    async fn order_once(&self, account: &mut Option<Account>) -> Result<(), AcmeError> {
        let _lock = loop {
            if let Some(lock) = self.store.try_lock()? {
                break lock;
            }
            tracing::debug!(listener = %self.listener, "another instance is ordering; waiting for its certificate");
            tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(LOCK_POLL) => {}
            }
            if self.pick_up_stored() {
                return Ok(());
            }
        };
        // It may have finished just before this instance took the lock.
        if self.pick_up_stored() {
            return Ok(());
        }
        let account = self.account(account).await?;
        let issued = order::obtain(&self.config, account, &self.answers, &self.store).await?;
        self.store.save_certificate(&issued.chain, &issued.key)?;
        let cert = self
            .store
            .certificate()?
            .ok_or_else(|| AcmeError::Certificate("stored, then not found".into()))?;
        tracing::info!(
            listener = %self.listener,
            names = ?cert.names,
            serial = %cert.serial,
            not_after = cert.not_after,
            "ACME certificate issued and installed"
        );
        self.install(Arc::new(cert));
        self.count("issued");
        Ok(())
    }

    fn count(&self, result: &str) {
        self.metrics
            .control
            .acme_orders
            .with_label_values(&[&self.listener, result])
            .inc();
    }
}
