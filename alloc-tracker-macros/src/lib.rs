//! `#[alloc_tracker::test]`: the test attribute of `alloc-tracker`.
//!
//! Use it through `alloc-tracker`'s `macros` feature, as
//! `#[alloc_tracker::test]`; this crate only holds the proc-macro (a
//! proc-macro crate can export nothing else).

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

/// Runs a test (sync or `async`) in a fresh instance of the scope
/// `test/<function name>` and asserts that the instance drained, panicking
/// with the leak report (call sites included) when it did not.
///
/// An `async` test is driven to completion on the test's thread by a small
/// executor, polled inside the instance. The test may return a value (a
/// `Result`, for `?`); it is returned after the check. Other attributes
/// (`#[should_panic]`, `#[ignore]`) are kept.
///
/// See the `alloc-tracker` crate documentation for examples.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        let args = proc_macro2::TokenStream::from(args);
        return syn::Error::new_spanned(args, "#[alloc_tracker::test] takes no arguments")
            .to_compile_error()
            .into();
    }
    let mut f = parse_macro_input!(item as ItemFn);
    if !f.sig.inputs.is_empty() {
        return syn::Error::new_spanned(&f.sig.inputs, "a test function takes no arguments")
            .to_compile_error()
            .into();
    }
    let name = f.sig.ident.to_string();
    let body = &f.block;
    let output = match &f.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let run = if f.sig.asyncness.take().is_some() {
        quote! {
            ::alloc_tracker::__private::run_async_test(#name, async move #body)
        }
    } else {
        quote! {
            ::alloc_tracker::__private::run_test(#name, move || -> #output #body)
        }
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
