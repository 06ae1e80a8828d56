//! `#[scope_alloc_tracker::test]`: the test attribute of `alloc-tracker`.
//!
//! Use it through `alloc-tracker`'s `macros` feature, as
//! `#[scope_alloc_tracker::test]`; this crate only holds the proc-macro (a
//! proc-macro crate can export nothing else).

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{parse_macro_input, Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// Workers of the runtime of `#[scope_alloc_tracker::test(tokio)]` by default.
const DEFAULT_WORKERS: usize = 2;

/// Runs a test (sync or `async`) in a fresh instance of the scope
/// `test/<function name>` and asserts that the instance drained, panicking
/// with the leak report (call sites included) when it did not.
///
/// - `#[scope_alloc_tracker::test]` on an `async fn`: driven to completion on the
///   test's thread by a small executor, polled inside the instance (no
///   tokio runtime: `tokio::spawn` inside it panics).
/// - `#[scope_alloc_tracker::test(tokio)]` or
///   `#[scope_alloc_tracker::test(tokio, worker_threads = 4)]` on an `async fn`
///   (needs scope-alloc-tracker's `tokio` feature): a fresh tokio multi-thread
///   runtime per test (2 workers by default, all drivers enabled), warmed
///   up before the check begins; its workers run in the instance, so
///   `tokio::spawn`ed tasks are the test's too.
///
/// Not combined with `#[tokio::test]` or `#[test]` (in either order: a
/// compile error says to use the `tokio` flavor): tokio's attribute would
/// build its runtime inside the checked scope, and the test would be
/// registered twice.
///
/// The test may return a value (a `Result`, for `?`); it is returned after
/// the check. Other attributes (`#[should_panic]`, `#[ignore]`) are kept.
///
/// See the `alloc-tracker` crate documentation for examples.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match Punctuated::<Meta, Token![,]>::parse_terminated.parse(args) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut tokio = false;
    let mut workers: Option<usize> = None;
    for arg in &args {
        match arg {
            Meta::Path(p) if p.is_ident("tokio") => tokio = true,
            Meta::NameValue(nv) if nv.path.is_ident("worker_threads") => {
                let n = match &nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<usize>().ok().filter(|n| *n > 0),
                    _ => None,
                };
                match n {
                    Some(n) => workers = Some(n),
                    None => {
                        return syn::Error::new_spanned(
                            &nv.value,
                            "worker_threads takes a positive integer",
                        )
                        .to_compile_error()
                        .into()
                    }
                }
            }
            other => {
                return syn::Error::new_spanned(
                    other,
                    "#[scope_alloc_tracker::test] takes `tokio` and `worker_threads = N` (with `tokio`)",
                )
                .to_compile_error()
                .into()
            }
        }
    }
    if workers.is_some() && !tokio {
        return syn::Error::new_spanned(
            &args,
            "worker_threads needs the tokio flavor: #[scope_alloc_tracker::test(tokio, worker_threads = N)]",
        )
        .to_compile_error()
        .into();
    }
    let mut f = parse_macro_input!(item as ItemFn);
    if !f.sig.inputs.is_empty() {
        return syn::Error::new_spanned(&f.sig.inputs, "a test function takes no arguments")
            .to_compile_error()
            .into();
    }
    // `#[tokio::test]` above this attribute has already expanded into a
    // sync fn with `#[test]`; below it, it is still in the attributes.
    if let Some(attr) = f.attrs.iter().find(|a| {
        let segs: Vec<String> = a
            .path()
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        segs.last().is_some_and(|l| l == "test")
    }) {
        return syn::Error::new_spanned(
            attr,
            "#[scope_alloc_tracker::test] does not combine with #[tokio::test] or #[test]: it registers \
             the test itself; for an async test on tokio use #[scope_alloc_tracker::test(tokio)] \
             (optionally `worker_threads = N`), which builds a multi-thread runtime outside the \
             checked scope",
        )
        .to_compile_error()
        .into();
    }
    let name = f.sig.ident.to_string();
    let body = &f.block;
    let output = match &f.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let is_async = f.sig.asyncness.take().is_some();
    let run = match (is_async, tokio) {
        (true, true) => {
            let workers = workers.unwrap_or(DEFAULT_WORKERS);
            quote! {
                ::scope_alloc_tracker::__tokio_flavor_check!();
                ::scope_alloc_tracker::__private::run_tokio_test(#name, #workers, async move #body)
            }
        }
        (true, false) => quote! {
            ::scope_alloc_tracker::__private::run_async_test(#name, async move #body)
        },
        (false, true) => {
            return syn::Error::new_spanned(
                f.sig.fn_token,
                "#[scope_alloc_tracker::test(tokio)] runs an async test: make it `async fn`",
            )
            .to_compile_error()
            .into()
        }
        (false, false) => quote! {
            ::scope_alloc_tracker::__private::run_test(#name, move || -> #output #body)
        },
    };
    let attrs = &f.attrs;
    let vis = &f.vis;
    let sig = &f.sig;
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis #sig {
            #run
        }
    }
    .into()
}
