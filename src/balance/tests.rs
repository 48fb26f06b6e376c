use super::view::View;
use super::*;

fn counts(
    rr: &RoundRobin,
    n: usize,
    picks: usize,
    eligible: impl Fn(usize) -> bool + 'static,
) -> Vec<usize> {
    let view = View::uniform(n).only(eligible);
    let mut rng = fastrand::Rng::with_seed(1);
    let mut counts = vec![0; n];
    for _ in 0..picks {
        if let Some(i) = rr.pick(&view, &mut rng) {
            counts[i] += 1;
        }
    }
    counts
}

#[test]
fn sequence_is_smooth() {
    assert_eq!(
        smooth_weighted_sequence(&[5, 1, 1]),
        vec![0, 0, 1, 0, 2, 0, 0]
    );
    assert_eq!(smooth_weighted_sequence(&[1, 1, 1]), vec![0, 1, 2]);
    assert_eq!(smooth_weighted_sequence(&[0, 2]), vec![1, 1]);
    assert!(smooth_weighted_sequence(&[]).is_empty());
}

#[test]
fn weights_are_respected_exactly_over_whole_cycles() {
    let rr = RoundRobin::new(&[3, 2, 1]);
    assert_eq!(counts(&rr, 3, 600, |_| true), vec![300, 200, 100]);
}

#[test]
fn ineligible_backends_are_never_picked() {
    let rr = RoundRobin::new(&[1, 1, 1, 1]);
    let c = counts(&rr, 4, 400, |i| i != 2);
    assert_eq!(c[2], 0);
    assert_eq!(c.iter().sum::<usize>(), 400);
    assert!(c.iter().enumerate().all(|(i, &n)| i == 2 || n >= 100));
    let mut rng = fastrand::Rng::with_seed(1);
    assert_eq!(rr.pick(&View::uniform(4).only(|_| false), &mut rng), None);
    assert_eq!(RoundRobin::new(&[]).pick(&View::uniform(0), &mut rng), None);
}

#[test]
fn huge_weights_are_scaled_not_allocated() {
    let rr = RoundRobin::new(&[1_000_000, 3_000_000, 1]);
    assert!(rr.sequence.len() as u64 <= MAX_SEQUENCE + 3);
    let c = counts(&rr, 3, rr.sequence.len() * 10, |_| true);
    assert!(c[2] >= 1, "every positive weight keeps a slot");
    let ratio = c[1] as f64 / c[0] as f64;
    assert!((2.9..3.1).contains(&ratio), "ratio {ratio}");
}

#[test]
fn property_weights_respected_for_many_random_pools() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let n = rng.usize(1..8);
        let weights: Vec<u32> = (0..n).map(|_| rng.u32(1..20)).collect();
        let rr = RoundRobin::new(&weights);
        let total: u32 = weights.iter().sum();
        let cycles = 5;
        let c = counts(&rr, n, (total * cycles) as usize, |_| true);
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(c[i], (w * cycles) as usize, "weights {weights:?}");
        }
    }
}

fn draw_counts(
    n_weights: &[u32],
    picks: usize,
    algorithm: impl Fn(&View, &mut fastrand::Rng) -> Option<usize>,
    view: View,
) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut counts = vec![0; n_weights.len()];
    for _ in 0..picks {
        if let Some(i) = algorithm(&view, &mut rng) {
            counts[i] += 1;
        }
    }
    counts
}

#[test]
fn random_follows_weights_and_eligibility() {
    let c = draw_counts(&[1, 3], 40_000, random, View::weighted(&[1, 3]));
    let share = c[1] as f64 / 40_000.0;
    assert!((0.72..0.78).contains(&share), "{c:?}");
    let c = draw_counts(
        &[1, 3],
        1_000,
        random,
        View::weighted(&[1, 3]).only(|i| i == 0),
    );
    assert_eq!(c, vec![1_000, 0]);
    assert_eq!(
        random(
            &View::uniform(2).only(|_| false),
            &mut fastrand::Rng::with_seed(1)
        ),
        None
    );
}

#[test]
fn least_requests_prefers_the_less_loaded() {
    let mut view = View::uniform(3);
    view.in_flight = vec![10, 0, 10];
    let c = draw_counts(&[1, 1, 1], 3_000, least_requests, view);
    // The idle member wins every draw it is part of: 2 of 3 pairs, minus pairs drawn twice.
    assert!(c[1] > 1_600, "{c:?}");
    let mut view = View::uniform(2).only(|i| i == 1);
    view.in_flight = vec![0, 100];
    assert_eq!(
        draw_counts(&[1, 1], 100, least_requests, view),
        vec![0, 100],
        "only eligible members"
    );
}

#[test]
fn slow_start_shrinks_a_new_members_share_in_every_algorithm() {
    let ramped = |rr_weights: &[u32]| {
        let mut view = View::weighted(rr_weights);
        view.ramps = vec![1.0, 1.0, 0.2];
        view
    };
    let rr = RoundRobin::new(&[1, 1, 1]);
    let mut rng = fastrand::Rng::with_seed(2);
    let view = ramped(&[1, 1, 1]);
    let mut c = [0usize; 3];
    for _ in 0..30_000 {
        c[rr.pick(&view, &mut rng).unwrap()] += 1;
    }
    assert!(c[2] < 4_000 && c[2] > 1_000, "round robin {c:?}");
    let c = draw_counts(&[1, 1, 1], 30_000, random, ramped(&[1, 1, 1]));
    assert!(c[2] < 4_000 && c[2] > 1_000, "random {c:?}");
    let c = draw_counts(&[1, 1, 1], 30_000, least_requests, ramped(&[1, 1, 1]));
    assert!(c[2] < 6_000, "least requests {c:?}");
}

#[test]
fn property_no_algorithm_picks_an_ineligible_member() {
    let mut rng = fastrand::Rng::with_seed(99);
    for _ in 0..300 {
        let n = rng.usize(1..10);
        let weights: Vec<u32> = (0..n).map(|_| rng.u32(1..10)).collect();
        let mask: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
        let any = mask.iter().any(|&m| m);
        let view = || {
            let mask = mask.clone();
            View::weighted(&weights).only(move |i| mask[i])
        };
        let rr = RoundRobin::new(&weights);
        let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let maglev = Maglev::new(&refs, &weights);
        for _ in 0..50 {
            let picks = [
                rr.pick(&view(), &mut rng),
                random(&view(), &mut rng),
                least_requests(&view(), &mut rng),
                maglev.pick(rng.u64(..), &view(), &mut rng),
            ];
            for pick in picks {
                assert_eq!(
                    pick.is_some(),
                    any,
                    "a pick exactly when something is eligible"
                );
                if let Some(i) = pick {
                    assert!(mask[i], "picked ineligible {i} of {mask:?}");
                }
            }
        }
    }
}

#[test]
fn property_every_balancer_picks_exactly_when_something_is_eligible() {
    let mut rng = fastrand::Rng::with_seed(7);
    for balance in Balance::ALL {
        for _ in 0..100 {
            let n = rng.usize(1..10);
            let weights: Vec<u32> = (0..n).map(|_| rng.u32(1..10)).collect();
            let mask: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
            let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let balancer = Balancer::new(balance, &weights, &refs);
            let mut view = View::weighted(&weights);
            view.in_flight = (0..n).map(|_| rng.u64(0..20)).collect();
            let eligible = mask.clone();
            let view = view.only(move |i| eligible[i]);
            for _ in 0..20 {
                let key = rng.bool().then(|| rng.u64(..));
                let pick = balancer.pick(&view, key, &mut rng);
                assert_eq!(pick.is_some(), mask.iter().any(|&m| m), "{balance:?}");
                if let Some(i) = pick {
                    assert!(mask[i], "{balance:?} picked ineligible {i} of {mask:?}");
                }
            }
        }
    }
}

#[test]
fn every_algorithm_has_its_config_name() {
    #[derive(serde::Deserialize)]
    struct Pool {
        balance: Balance,
    }
    let names = [
        "round_robin",
        "least_requests",
        "least_conn",
        "random",
        "consistent_hash",
    ];
    for (name, balance) in names.iter().zip(Balance::ALL) {
        let pool: Pool = toml::from_str(&format!("balance = \"{name}\"")).unwrap();
        assert_eq!(pool.balance, balance);
    }
    assert!(toml::from_str::<Pool>("balance = \"fastest\"").is_err());
}
