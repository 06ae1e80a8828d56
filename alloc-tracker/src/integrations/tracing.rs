//! A `tracing_subscriber::Layer` that enters an allocation scope for each
//! span that names one, so that `.instrument(span)` (or `span.in_scope`)
//! is all a tracing user writes.
//!
//! A span names its scope with the field `alloc_scope`
//! (`info_span!("run", alloc_scope = "checkpoint")`), or, with
//! [`AllocScopeLayer::with_span_names`], by its own name. The scope is the
//! permanent scope of that name ([`ScopeId::get_or_register`], so a static
//! [`Scope`](crate::Scope) of the same name is the same scope), below the
//! scope of the nearest enclosing span that has one (tracing's span tree:
//! a span's parent is the span current when it is made).
//!
//! Inside an instance the name nests below it, as a static child does
//! ([`ScopeId::child_named`]): a span `parse` made inside `request#7` (or
//! below a span whose scope is that instance) enters `request#7/parse`, a
//! transient scope of kind `request/parse` released with the instance, so
//! the request's bytes stay the request's and metrics fold them into
//! `request/parse`. A span that outlives its instance must not be entered
//! after the instance is released (its scope id may be recycled). Each time the
//! span is entered on a thread the scope is entered there, and left when
//! the span is exited: an instrumented future allocates in it on every
//! poll, on whichever worker polls it.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::integrations::tracing::AllocScopeLayer;
//! use scope_alloc_tracker::ScopeId;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(AllocScopeLayer::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("compaction", alloc_scope = "doc-compaction");
//!     let scope = span.in_scope(ScopeId::current);
//!     assert_eq!(scope.path(), "doc-compaction");
//! });
//! ```
//!
//! Names that are not valid scope names (empty, or containing `/` or `#`)
//! are ignored: such a span enters no scope.

use std::cell::RefCell;
use std::fmt;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::{ScopeGuard, ScopeId};

/// The field a span names its scope with, unless configured otherwise.
pub const DEFAULT_FIELD: &str = "alloc_scope";

/// Which spans enter a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// Only spans with the field; the field's value names the scope.
    Field,
    /// Spans with the field as above; other spans by their own name.
    FieldOrSpanName,
}

/// A layer that enters an allocation scope for each span that names one.
/// See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct AllocScopeLayer {
    field: &'static str,
    naming: Naming,
}

impl Default for AllocScopeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AllocScopeLayer {
    /// Spans with an `alloc_scope` field enter the scope it names.
    pub fn new() -> Self {
        Self {
            field: DEFAULT_FIELD,
            naming: Naming::Field,
        }
    }

    /// Reads the scope name from `field` instead of `alloc_scope`.
    pub fn field(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }

    /// Also spans without the field enter a scope: the one named after the
    /// span.
    pub fn with_span_names(mut self) -> Self {
        self.naming = Naming::FieldOrSpanName;
        self
    }
}

/// The scope a span enters, kept in the span's extensions.
#[derive(Debug, Clone, Copy)]
struct SpanScope(ScopeId);

thread_local! {
    /// The guards of the spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<(Id, ScopeGuard)>> = const { RefCell::new(Vec::new()) };
}

struct NameVisitor<'a> {
    field: &'a str,
    value: Option<String>,
}

impl Visit for NameVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.field {
            self.value = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == self.field && self.value.is_none() {
            self.value = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

impl<S> Layer<S> for AllocScopeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Charged to the tracker's own scope, not to the span's caller.
        let scope = crate::hot::thread_state::internal(|| {
            let mut v = NameVisitor {
                field: self.field,
                value: None,
            };
            attrs.record(&mut v);
            let name = match (v.value, self.naming) {
                (Some(name), _) => name,
                (None, Naming::FieldOrSpanName) => attrs.metadata().name().to_string(),
                (None, Naming::Field) => return None,
            };
            let parent = span
                .scope()
                .skip(1)
                .find_map(|s| s.extensions().get::<SpanScope>().map(|s| s.0))
                .or_else(|| Some(ScopeId::current()).filter(|s| s.is_transient()));
            match parent {
                Some(p) => p.child_named(&name),
                None => ScopeId::get_or_register(&name, None),
            }
            .or_else(|_| ScopeId::get_or_register(&name, None))
            .ok()
        });
        if let Some(scope) = scope {
            span.extensions_mut().insert(SpanScope(scope));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(SpanScope(scope)) = span.extensions().get::<SpanScope>().copied() else {
            return;
        };
        let _ = ENTERED.try_with(|entered| {
            let mut entered = entered.borrow_mut();
            // Grown outside the span's scope.
            crate::hot::thread_state::internal(|| entered.reserve(1));
            entered.push((id.clone(), scope.enter()));
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = ENTERED.try_with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(pos) = entered.iter().rposition(|(i, _)| i == id) {
                let (_, guard) = entered.remove(pos);
                match entered.get_mut(pos) {
                    // Exited before a span entered after it (guards of
                    // `span.enter()` dropped out of order): the later one
                    // will restore what this one would have.
                    Some((_, next)) => guard.hand_over(next),
                    // The usual case: the innermost span exits and its
                    // guard restores the scope current before it.
                    None => drop(guard),
                }
            }
        });
    }
}
