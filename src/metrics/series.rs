//! Series handles kept by the objects they describe (a pool, a backend), so a request counts
//! itself without a `with_label_values` lookup: that hashes every label value and takes the
//! vec's lock, and four of them per request cost about 2% of a proxied request
//! (BENCHMARKS.md). Each handle is looked up the first time it is used, so no series exists
//! before its first event that would not have existed without the cache.
//!
//! A handle outlives `remove_label_values` of its series (`Metrics::forget_backend`): what a
//! forgotten backend still counts goes to a series no longer exported, where a lookup would
//! have brought the series back.

use super::code_class;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use std::sync::{Arc, OnceLock};

/// A `{a,b,code_class}` counter of one `{a,b}` pair, per status class.
#[derive(Debug, Default)]
pub struct ByClass([OnceLock<IntCounter>; 5]);

impl ByClass {
    /// The counter of `vec` labelled `labels` and the class of `status`.
    pub fn get(&self, vec: &IntCounterVec, labels: [&str; 2], status: u16) -> &IntCounter {
        let class = code_class(status);
        // The cell of each of `code_class`'s answers.
        let index = match class {
            "1xx" => 0,
            "2xx" => 1,
            "3xx" => 2,
            "4xx" => 3,
            _ => 4,
        };
        self.0[index].get_or_init(|| vec.with_label_values(&[labels[0], labels[1], class]))
    }
}

/// The series a pool's requests are counted in, labelled with the pool's name.
#[derive(Debug, Default)]
pub struct PoolSeries {
    /// `portero_upstream_response_seconds{pool}`.
    pub upstream_response: OneHistogram,
    /// `portero_request_duration_seconds{pool}`.
    pub request_duration: OneHistogram,
    /// `portero_requests_total{listener,pool,code_class}`.
    pub requests: ByListener,
}

/// A histogram of one label value.
#[derive(Debug, Default)]
pub struct OneHistogram(OnceLock<Histogram>);

impl OneHistogram {
    /// The histogram of `vec` labelled `label`.
    pub fn get(&self, vec: &HistogramVec, label: &str) -> &Histogram {
        self.0.get_or_init(|| vec.with_label_values(&[label]))
    }
}

/// How many listeners a [`ByListener`] keeps handles for; a daemon has a handful.
const LISTENER_SLOTS: usize = 4;

/// A `{listener,b,code_class}` counter of one `b`, per listener and status class: slots are
/// claimed by listener name on first use; past the last slot, the plain lookup.
#[derive(Debug, Default)]
pub struct ByListener([(OnceLock<Arc<str>>, ByClass); LISTENER_SLOTS]);

impl ByListener {
    /// Adds one to the counter of `vec` labelled `listener`, `b` and the class of `status`.
    pub fn inc(&self, vec: &IntCounterVec, listener: &Arc<str>, b: &str, status: u16) {
        for (name, counters) in &self.0 {
            let claimed = name.get_or_init(|| Arc::clone(listener));
            if **claimed == **listener {
                counters.get(vec, [listener, b], status).inc();
                return;
            }
        }
        vec.with_label_values(&[listener, b, code_class(status)])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, Opts};

    fn counter() -> IntCounterVec {
        IntCounterVec::new(Opts::new("c", "c"), &["a", "b", "code_class"]).expect("valid")
    }

    #[test]
    fn by_class_counts_the_series_a_lookup_would() {
        let vec = counter();
        let cached = ByClass::default();
        for status in [200, 204, 404, 503, 101, 302, 200] {
            cached.get(&vec, ["p", "b"], status).inc();
        }
        let value = |class| vec.with_label_values(&["p", "b", class]).get();
        assert_eq!(
            [
                value("1xx"),
                value("2xx"),
                value("3xx"),
                value("4xx"),
                value("5xx")
            ],
            [1, 3, 1, 1, 1]
        );
    }

    #[test]
    fn by_listener_keeps_listeners_apart_and_falls_back_past_its_slots() {
        let vec = counter();
        let cached = ByListener::default();
        let names: Vec<Arc<str>> = (0..LISTENER_SLOTS + 2)
            .map(|i| Arc::from(format!("l{i}")))
            .collect();
        for (i, name) in names.iter().enumerate() {
            for _ in 0..=i {
                cached.inc(&vec, name, "pool", 200);
            }
        }
        cached.inc(&vec, &names[0], "pool", 500);
        for (i, name) in names.iter().enumerate() {
            let got = vec.with_label_values(&[name, "pool", "2xx"]).get();
            assert_eq!(got, i as u64 + 1, "{name}");
        }
        assert_eq!(vec.with_label_values(&["l0", "pool", "5xx"]).get(), 1);
    }

    #[test]
    fn one_histogram_observes_into_its_series() {
        let vec = HistogramVec::new(HistogramOpts::new("h", "h"), &["pool"]).expect("valid");
        let cached = OneHistogram::default();
        cached.get(&vec, "p").observe(0.5);
        cached.get(&vec, "p").observe(1.5);
        assert_eq!(vec.with_label_values(&["p"]).get_sample_count(), 2);
    }
}
