//! With `AllocScopeLayer` installed, a span that names a scope enters it
//! whenever the span is entered, so `.instrument(span)` is all it takes,
//! across `.await` and task migration on tokio's multi-thread runtime.
#![cfg(all(feature = "jemalloc", feature = "tracing"))]

use std::hint::black_box;
use std::sync::OnceLock;

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::integrations::tracing::AllocScopeLayer;
use scope_alloc_tracker::{Scope, ScopeId};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static CHECKPOINT: Scope = Scope::new("checkpoint");

fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let subscriber =
            tracing_subscriber::registry().with(AllocScopeLayer::new().with_span_names());
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

rusty_fork_test! {
    #[test]
    fn a_span_with_the_field_enters_its_scope_and_the_static_of_that_name() {
        install();
        let span = tracing::info_span!("run", alloc_scope = "checkpoint");
        let before = CHECKPOINT.stats();
        let (scope, v) = span.in_scope(|| (ScopeId::current(), black_box(vec![0u8; 777])));
        assert_eq!(scope, CHECKPOINT.id(), "one name, one scope");
        assert_eq!(CHECKPOINT.stats().live_bytes - before.live_bytes, 777);
        assert_eq!(ScopeId::current(), ScopeId::UNSCOPED, "left on exit");
        drop(v);
        assert_eq!(CHECKPOINT.stats().live_bytes, before.live_bytes);
    }
}

rusty_fork_test! {
    #[test]
    fn nested_spans_make_nested_scopes_and_names_are_used_when_configured() {
        install();
        let outer = tracing::info_span!("job", alloc_scope = "span-job");
        let (outer_scope, inner_scope, named) = outer.in_scope(|| {
            let inner = tracing::info_span!("step", alloc_scope = "parse");
            let inner_scope = inner.in_scope(ScopeId::current);
            let named = tracing::info_span!("span-named").in_scope(ScopeId::current);
            (ScopeId::current(), inner_scope, named)
        });
        assert_eq!(outer_scope.path(), "span-job");
        assert_eq!(inner_scope.path(), "span-job/parse");
        assert_eq!(named.path(), "span-job/span-named");
        // An invalid name enters nothing.
        let bad = tracing::info_span!("x", alloc_scope = "a/b");
        assert_eq!(bad.in_scope(ScopeId::current), ScopeId::UNSCOPED);
    }
}

rusty_fork_test! {
    #[test]
    fn instrumented_futures_keep_the_scope_across_awaits_and_workers() {
        install();
        static NET: Scope = Scope::new("span-net");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        let before = NET.stats();
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let span = tracing::info_span!("conn", alloc_scope = "span-net");
                    tokio::spawn(
                        async {
                            let mut kept = Vec::new();
                            let mut seen = Vec::new();
                            for _ in 0..20 {
                                seen.push(ScopeId::current());
                                kept.push(black_box(vec![0u8; 500]));
                                tokio::task::yield_now().await;
                            }
                            seen
                        }
                        .instrument(span),
                    )
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        assert_eq!(results.len(), 16 * 20);
        assert!(results.iter().all(|s| *s == NET.id()), "{results:?}");
        let after = NET.stats();
        assert!(after.total_bytes - before.total_bytes >= 16 * 20 * 500);
        // Outside the spans, the workers are back in their own scope.
        let outside = rt.block_on(async { tokio::spawn(async { ScopeId::current() }).await.unwrap() });
        assert_ne!(outside, NET.id());
    }
}

rusty_fork_test! {
    #[test]
    fn spans_exited_out_of_order_leave_the_right_scope_current() {
        install();
        let a = tracing::info_span!("a", alloc_scope = "span-a");
        let ga = a.enter();
        let b = tracing::info_span!("b", alloc_scope = "span-b");
        let gb = b.enter();
        assert_eq!(ScopeId::current().path(), "span-a/span-b");
        drop(ga); // out of order
        assert_eq!(ScopeId::current().path(), "span-a/span-b");
        drop(gb);
        assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    }
}

rusty_fork_test! {
    #[test]
    fn a_span_named_inside_an_instance_nests_below_the_instance() {
        install();
        static REQUEST: Scope = Scope::new("span-request");
        let req = REQUEST.instance().unwrap();
        let (parse, decode, kind_again, bytes) = req.in_scope(|| {
            let span = tracing::info_span!("p", alloc_scope = "span-parse");
            span.in_scope(|| {
                let before = ScopeId::current().stats().live_bytes;
                let v = black_box(vec![0u8; 5555]);
                let n = ScopeId::current().stats().live_bytes - before;
                let decode =
                    tracing::info_span!("d", alloc_scope = "decode").in_scope(ScopeId::current);
                drop(v);
                let kind_again =
                    tracing::info_span!("k", alloc_scope = "span-request").in_scope(ScopeId::current);
                (ScopeId::current(), decode, kind_again, n)
            })
        });
        let n = req.serial();
        assert_eq!(parse.path(), format!("span-request#{n}/span-parse"));
        assert_eq!(parse.kind().path(), "span-request/span-parse");
        assert_eq!(decode.path(), format!("span-request#{n}/span-parse/decode"));
        assert_eq!(bytes, 5555, "the span's bytes went to the request's scope");
        // Naming the kind itself inside its instance... from a child span it is a
        // child of that name; at the instance's level it stays in the instance.
        assert_ne!(kind_again, ScopeId::UNSCOPED);
        let at_top = req.in_scope(|| {
            tracing::info_span!("k2", alloc_scope = "span-request").in_scope(ScopeId::current)
        });
        assert_eq!(at_top, req.id());
        // The top-level scope of that name got nothing.
        let top = ScopeId::get_or_register("span-parse", None).unwrap();
        assert_eq!(top.stats().total_bytes, 0);
        assert!(req.stats_with_children().total_bytes >= 5555);
    }
}
