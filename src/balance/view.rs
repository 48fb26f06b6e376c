//! A [`Candidates`] made of plain vectors, for tests of the algorithms.

use super::Candidates;

/// Members described by vectors.
pub struct View {
    pub weights: Vec<u32>,
    pub ramps: Vec<f64>,
    pub in_flight: Vec<u64>,
    pub eligible: Box<dyn Fn(usize) -> bool>,
}

impl View {
    /// `n` members of weight 1, all eligible and ramped up, nothing in flight.
    pub fn uniform(n: usize) -> Self {
        Self::weighted(&vec![1; n])
    }

    /// Members with these weights.
    pub fn weighted(weights: &[u32]) -> Self {
        let n = weights.len();
        Self {
            weights: weights.to_vec(),
            ramps: vec![1.0; n],
            in_flight: vec![0; n],
            eligible: Box::new(|_| true),
        }
    }

    /// Only the members `eligible` accepts.
    pub fn only(mut self, eligible: impl Fn(usize) -> bool + 'static) -> Self {
        self.eligible = Box::new(eligible);
        self
    }
}

impl Candidates for View {
    fn len(&self) -> usize {
        self.weights.len()
    }
    fn eligible(&self, i: usize) -> bool {
        (self.eligible)(i)
    }
    fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }
    fn ramp(&self, i: usize) -> f64 {
        self.ramps[i]
    }
    fn in_flight(&self, i: usize) -> u64 {
        self.in_flight[i]
    }
}
