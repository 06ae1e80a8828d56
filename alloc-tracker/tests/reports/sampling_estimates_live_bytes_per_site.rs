//! Outside checks, byte-interval sampling estimates each site's live bytes.
//! Tolerance: with ~600 samples the relative standard error is about 4%;
//! the test allows 20% (5 sigma) so it does not flake.

use std::hint::black_box;

use scope_alloc_tracker::sampling::{sampled_sites, set_sampling, Sampling};
use scope_alloc_tracker::ScopeId;

#[inline(never)]
fn fill_cache(n: usize) -> Vec<Vec<u8>> {
    let mut rng = 0x1234_5678_u64;
    (0..n)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            vec![0u8; 16 + (rng % 2048) as usize]
        })
        .collect()
}

#[test]
fn estimates_are_within_tolerance_and_name_the_site() {
    let _alone = crate::common::alone();
    let scope = ScopeId::register("sampled-cache", None).unwrap();
    set_sampling(Sampling::Bytes {
        every_bytes: 64 * 1024,
    });
    // A fresh thread starts its countdown with the new interval.
    let kept = std::thread::spawn(move || scope.in_scope(|| fill_cache(40_000)))
        .join()
        .unwrap();
    let truth: u64 = kept.iter().map(|v| v.capacity() as u64).sum();
    let sites: Vec<_> = sampled_sites()
        .into_iter()
        .filter(|s| s.scope == scope)
        .collect();
    let estimate: u64 = sites.iter().map(|s| s.estimated_bytes).sum();
    let samples: u64 = sites.iter().map(|s| s.samples).sum();
    let err = (estimate as f64 - truth as f64).abs() / truth as f64;
    assert!(samples > 300, "only {samples} samples");
    assert!(
        err < 0.20,
        "estimate {estimate} vs truth {truth} ({:.1}% off)",
        err * 100.0
    );
    assert!(
        sites[0]
            .frames
            .iter()
            .any(|f| f.function.contains("fill_cache")),
        "{:?}",
        sites[0].frames
    );
    // Frees remove samples.
    drop(black_box(kept));
    set_sampling(Sampling::Off);
    let left: u64 = sampled_sites()
        .into_iter()
        .filter(|s| s.scope == scope)
        .map(|s| s.samples)
        .sum();
    assert_eq!(left, 0);
}
