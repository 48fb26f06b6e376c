//! Consistent hashing with Maglev (Eisenbud et al., NSDI 2016): a lookup table of M slots
//! (M prime, about 100 per member) filled by each member in turn along its own permutation.
//! A key goes to the member of slot `hash % M`. When a member leaves, only its slots change
//! hands (about 1/N of the keys move); weights give a member proportionally more turns.
//! While a member is ineligible (unhealthy, slow-starting), its keys probe on to the next
//! slots, which belong to members spread evenly over the pool.

use super::{Candidates, first_accepted};
use std::hash::Hasher;

/// A Maglev lookup table over a pool's members.
#[derive(Debug)]
pub struct Maglev {
    table: Box<[u32]>,
}

const EMPTY: u32 = u32::MAX;

impl Maglev {
    /// Builds the table; `names` identify members across rebuilds (their addresses), so a
    /// member keeps its slots when others come and go.
    pub fn new(names: &[&str], weights: &[u32]) -> Self {
        let n = names.len();
        if n == 0 {
            return Self {
                table: Box::new([]),
            };
        }
        let size = table_size(n);
        let max_weight = f64::from(weights.iter().copied().max().unwrap_or(1).max(1));
        let permutations: Vec<(u64, u64)> = names
            .iter()
            .map(|name| {
                (
                    hash(b"offset", name.as_bytes()) % size,
                    hash(b"skip", name.as_bytes()) % (size - 1) + 1,
                )
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut credit = vec![0.0f64; n];
        let mut table = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        while filled < size {
            for i in 0..n {
                credit[i] += f64::from(weights[i]) / max_weight;
                if credit[i] < 1.0 {
                    continue;
                }
                credit[i] -= 1.0;
                let (offset, skip) = permutations[i];
                loop {
                    let slot = ((offset + next[i] * skip) % size) as usize;
                    next[i] += 1;
                    if table[slot] == EMPTY {
                        table[slot] = i as u32;
                        filled += 1;
                        break;
                    }
                }
                if filled == size {
                    break;
                }
            }
        }
        Self {
            table: table.into_boxed_slice(),
        }
    }

    /// The member for `key_hash`: the owner of its slot, or, when that one is ineligible or its
    /// ramp turns the key down, the owner of the next slot that takes it.
    pub fn pick(
        &self,
        key_hash: u64,
        c: &impl Candidates,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let size = self.table.len();
        if size == 0 {
            return None;
        }
        let start = (key_hash % size as u64) as usize;
        let order = (0..size).map(|k| self.table[(start + k) % size] as usize);
        first_accepted(order, c, rng)
    }
}

/// A prime of about 100 slots per member (at least 1021, at most 65,537).
fn table_size(members: usize) -> u64 {
    let want = (members as u64 * 100).clamp(1021, 65_537);
    (want..)
        .find(|&m| is_prime(m))
        .expect("there is always a larger prime")
}

fn is_prime(m: u64) -> bool {
    m >= 2 && (2..).take_while(|d| d * d <= m).all(|d| m % d != 0)
}

/// Stable 64-bit FNV-1a (the same on every portero, so replicas agree on placement).
pub fn hash(seed: &[u8], bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(seed);
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::super::view::View;
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
    }

    fn table(names: &[String], weights: &[u32]) -> Maglev {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Maglev::new(&refs, weights)
    }

    #[test]
    fn sizes_are_prime_and_proportional() {
        assert_eq!(table_size(1), 1021);
        assert!(is_prime(table_size(50)) && table_size(50) >= 5000);
        assert_eq!(table_size(10_000), 65_537);
    }

    #[test]
    fn a_key_keeps_its_member_and_one_leaving_moves_about_one_nth() {
        let all = names(10);
        let before = table(&all, &[1; 10]);
        let view = View::uniform(10);
        let mut rng = fastrand::Rng::with_seed(3);
        let keys: Vec<u64> = (0..20_000u32)
            .map(|k| hash(b"key", &k.to_be_bytes()))
            .collect();
        let placed: Vec<usize> = keys
            .iter()
            .map(|&k| before.pick(k, &view, &mut rng).unwrap())
            .collect();
        assert!(
            keys.iter()
                .zip(&placed)
                .all(|(&k, &p)| before.pick(k, &view, &mut rng) == Some(p)),
            "stable"
        );

        // Member 4 leaves: rebuild without it (indexes shift, names do not).
        let rest: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, n)| n.clone())
            .collect();
        let after = table(&rest, &[1; 9]);
        let view9 = View::uniform(9);
        let moved = keys
            .iter()
            .zip(&placed)
            .filter(|(k, p)| {
                let now = &rest[after.pick(**k, &view9, &mut rng).unwrap()];
                *now != all[**p]
            })
            .count();
        let share = moved as f64 / keys.len() as f64;
        // The departed member's own tenth must move; Maglev moves little beyond it.
        assert!((0.09..0.16).contains(&share), "{share}");
    }

    #[test]
    fn weights_and_eligibility_are_respected() {
        let all = names(3);
        let maglev = table(&all, &[1, 2, 1]);
        let mut rng = fastrand::Rng::with_seed(5);
        let mut counts = [0usize; 3];
        let view = View::weighted(&[1, 2, 1]);
        for k in 0..40_000u32 {
            counts[maglev
                .pick(hash(b"k", &k.to_be_bytes()), &view, &mut rng)
                .unwrap()] += 1;
        }
        let share = counts[1] as f64 / 40_000.0;
        assert!((0.45..0.55).contains(&share), "{counts:?}");
        let without_1 = View::weighted(&[1, 2, 1]).only(|i| i != 1);
        for k in 0..1_000u32 {
            assert_ne!(
                maglev.pick(hash(b"k", &k.to_be_bytes()), &without_1, &mut rng),
                Some(1)
            );
        }
    }
}
