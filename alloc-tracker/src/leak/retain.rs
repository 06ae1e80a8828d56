//! `Retain`: declared retention, the leak check's suppressions.
//!
//! An engine keeps some memory on purpose (a page cache, a buffer pool,
//! interned strings): a rule says "blocks allocated from this site, or in
//! this scope, may stay after the check, up to N bytes". Rules come from
//! code ([`LeakCheckOptions::retain`](super::LeakCheckOptions::retain)),
//! from the environment (`ALLOC_TRACKER_RETAIN`, rules inline) or from a
//! file (`ALLOC_TRACKER_RETAIN_FILE`), and a few default rules name what
//! the runtimes keep on purpose ([`default_rules`]). The per-block verdict
//! that applies them is `verdict.rs`.
//!
//! Text syntax, one rule a line (`;` also separates rules in the
//! environment variable), `#` starts a comment:
//!
//! ```text
//! site:redb::tree_store::page_store <= 64MiB  name=page-cache
//! scope:db/cache <= 1MiB
//! -default:tokio-park-thread      # turn one default rule off
//! -defaults                        # turn every default rule off
//! ```

use std::fmt;

use crate::scope::ScopeId;

/// The environment variable holding rules inline.
pub const RETAIN_ENV: &str = "ALLOC_TRACKER_RETAIN";
/// The environment variable naming a file of rules.
pub const RETAIN_FILE_ENV: &str = "ALLOC_TRACKER_RETAIN_FILE";

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// A frame of the block's call stack whose function path contains this.
    Site(String),
    /// Blocks allocated in this scope or below it.
    Scope(ScopeId),
    /// Blocks allocated in the scope with this path or below it.
    ScopePath(String),
    /// Default rules: for each group of `all`, a frame whose function path
    /// contains one of the group's substrings; and with `innermost`, the
    /// innermost frame outside the allocation machinery (`alloc::`,
    /// `core::`, `Vec`/`RawVec` growth) contains one of those.
    Frames {
        innermost: Option<&'static [&'static str]>,
        all: &'static [&'static [&'static str]],
    },
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Site(s) => write!(f, "site:{s}"),
            Matcher::Scope(id) => write!(f, "scope:{}", id.path()),
            Matcher::ScopePath(p) => write!(f, "scope:{p}"),
            Matcher::Frames { innermost, all } => {
                let mut groups: Vec<String> = all.iter().map(|g| g.join("|")).collect();
                if let Some(inner) = innermost {
                    groups.insert(0, format!("innermost {}", inner.join("|")));
                }
                write!(f, "site:{}", groups.join(" & "))
            }
        }
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RuleSource {
    /// [`LeakCheckOptions::retain`](super::LeakCheckOptions::retain).
    Code,
    /// The environment variable `ALLOC_TRACKER_RETAIN`.
    Env,
    /// The file named by `ALLOC_TRACKER_RETAIN_FILE`.
    File,
    /// One of the [`default_rules`](super::default_rules).
    Default,
}

/// A declared retention: blocks matched by it may stay live after a leak
/// check, up to a bound in bytes; beyond the bound they are leaks.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::leak::{LeakCheck, Retain};
/// use scope_alloc_tracker::ScopeId;
/// use std::sync::Mutex;
///
/// static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// /// Reads a page into the cache (the page is allocated here).
/// #[inline(never)]
/// fn fill_page_cache(len: usize) {
///     let page = std::hint::black_box(vec![7u8; len]);
///     CACHE.lock().unwrap().push(page);
/// }
///
/// let commit = ScopeId::register("doc-commit", None).unwrap();
/// let check = LeakCheck::options(commit)
///     .retain(Retain::site("fill_page_cache").up_to(64 << 10).named("page-cache"))
///     .begin();
/// commit.in_scope(|| fill_page_cache(4096));
/// let drained = check.finish().expect("the cache is declared");
/// assert_eq!(drained.allowed[0].rule, "page-cache");
/// ```
///
/// A site rule matches the stack that *allocated* the block, not the code
/// that stored it: name the function that allocates the cached value. A
/// rule only matches blocks the check recorded (the default
/// [`Sites::Record`](super::Sites::Record)); with sites off, every byte
/// kept is a leak.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Retain {
    pub(crate) matcher: Matcher,
    pub(crate) bound: u64,
    pub(crate) name: Option<String>,
    pub(crate) source: RuleSource,
}

/// A [`Retain`] rule still missing its bound: call
/// [`up_to`](RetainWithoutBound::up_to). A rule without a bound would hide
/// any leak made through the same code path, so there is no default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "call .up_to(bytes) to make the rule"]
pub struct RetainWithoutBound {
    matcher: Matcher,
    name: Option<String>,
}

impl RetainWithoutBound {
    /// The most bytes the rule allows (requested sizes, summed over the
    /// matched blocks). `u64::MAX` says "unbounded" explicitly.
    pub fn up_to(self, bytes: u64) -> Retain {
        Retain {
            matcher: self.matcher,
            bound: bytes,
            name: self.name,
            source: RuleSource::Code,
        }
    }

    /// A label for the report (default: the rule's pattern).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl Retain {
    /// Matches a block whose recorded call stack has a frame whose function
    /// path contains `function_substring` (e.g.
    /// `"redb::tree_store::page_store"`).
    pub fn site(function_substring: impl Into<String>) -> RetainWithoutBound {
        RetainWithoutBound {
            matcher: Matcher::Site(function_substring.into()),
            name: None,
        }
    }

    /// Matches blocks allocated in `scope` or in a scope below it.
    pub fn scope(scope: impl Into<ScopeId>) -> RetainWithoutBound {
        RetainWithoutBound {
            matcher: Matcher::Scope(scope.into()),
            name: None,
        }
    }

    /// A label for the report (default: the rule's pattern).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The rule's label: its name, or its pattern when unnamed.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.pattern())
    }

    /// The rule in text syntax, without the bound (`site:<substring>` or
    /// `scope:<path>`).
    pub fn pattern(&self) -> String {
        self.matcher.to_string()
    }

    /// The bound in bytes.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Where the rule came from.
    pub fn source(&self) -> RuleSource {
        self.source
    }

    /// Parses rules in text syntax (see the module docs of
    /// [`leak`](super)): one rule a line or separated by `;`.
    ///
    /// ```
    /// use scope_alloc_tracker::leak::Retain;
    /// let rules = Retain::parse("site:page_store <= 64MiB name=cache # comment").unwrap();
    /// assert_eq!(rules.rules[0].bound(), 64 << 20);
    /// assert_eq!(rules.rules[0].label(), "cache");
    /// assert!(Retain::parse("site:page_store").is_err()); // no bound
    /// ```
    ///
    /// # Errors
    /// [`RetainRuleError`] naming the first bad line and what is wrong.
    pub fn parse(text: &str) -> Result<RuleSet, RetainRuleError> {
        parse(text, RuleSource::Code, "text")
    }
}

/// Rules parsed from text, with the default rules they turn off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleSet {
    /// The rules, in the order written.
    pub rules: Vec<Retain>,
    /// Default rules turned off by name (`-default:<name>`).
    pub defaults_off: Vec<String>,
    /// Whether `-defaults` turned every default rule off.
    pub all_defaults_off: bool,
}

/// A bad rule source: a line that does not parse, a file that cannot be
/// read, an environment variable that is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RetainRuleError {
    /// Where the rules came from (`ALLOC_TRACKER_RETAIN`, a file path).
    pub origin: String,
    /// The 1-based line (0 when the whole source failed, e.g. unreadable).
    pub line: usize,
    /// The offending text.
    pub text: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for RetainRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "bad retention rules in {}: {}",
                self.origin, self.problem
            )
        } else {
            write!(
                f,
                "bad retention rule in {} line {}: `{}`: {} (expected `site:<function path substring> <= <bytes>[KiB|MiB|GiB] [name=<label>]`, `scope:<path> <= <bytes>`, `-default:<name>` or `-defaults`)",
                self.origin, self.line, self.text, self.problem
            )
        }
    }
}

impl std::error::Error for RetainRuleError {}

fn parse(text: &str, source: RuleSource, origin: &str) -> Result<RuleSet, RetainRuleError> {
    let mut set = RuleSet::default();
    for (i, raw_line) in text.lines().enumerate() {
        for raw in raw_line.split(';') {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let err = |problem: &str| RetainRuleError {
                origin: origin.to_string(),
                line: i + 1,
                text: line.to_string(),
                problem: problem.to_string(),
            };
            if line == "-defaults" {
                set.all_defaults_off = true;
                continue;
            }
            if let Some(name) = line.strip_prefix("-default:") {
                let name = name.trim();
                if !DEFAULT_NAMES.contains(&name) {
                    return Err(err(&format!(
                        "no default rule is named `{name}` (they are: {})",
                        DEFAULT_NAMES.join(", ")
                    )));
                }
                set.defaults_off.push(name.to_string());
                continue;
            }
            let Some((pattern, rest)) = line.split_once("<=") else {
                return Err(err("missing bound: write `<= <bytes>` after the pattern"));
            };
            let pattern = pattern.trim();
            let matcher = if let Some(s) = pattern.strip_prefix("site:") {
                Matcher::Site(s.trim().to_string())
            } else if let Some(s) = pattern.strip_prefix("scope:") {
                Matcher::ScopePath(s.trim().trim_end_matches('/').to_string())
            } else {
                return Err(err("a rule starts with `site:` or `scope:`"));
            };
            if matches!(&matcher, Matcher::Site(s) | Matcher::ScopePath(s) if s.is_empty()) {
                return Err(err("empty pattern"));
            }
            let mut words = rest.split_whitespace();
            let mut bound_text = words.next().unwrap_or("").to_string();
            // `<= 64 MiB`: a unit written apart from its number.
            let mut name = None;
            for w in words {
                if let Some(n) = w.strip_prefix("name=") {
                    if n.is_empty() {
                        return Err(err("empty name"));
                    }
                    name = Some(n.to_string());
                } else if name.is_none() && bound_text.bytes().all(|b| b.is_ascii_digit()) {
                    bound_text.push_str(w);
                } else {
                    return Err(err(&format!("unexpected `{w}` after the bound")));
                }
            }
            let bound = parse_bytes(&bound_text).map_err(|p| err(&p))?;
            set.rules.push(Retain {
                matcher,
                bound,
                name,
                source,
            });
        }
    }
    Ok(set)
}

/// The text before a `#` that starts the line or follows a space (scope
/// paths contain `#` in instance names: `test#3`).
fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &s[..i];
        }
    }
    s
}

/// `4096`, `4096B`, `64KiB`, `64K`, `4MiB`, `4M`, `1GiB`, `1G`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("missing bound after `<=`".into());
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bound `{s}` is not a number of bytes"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in bound `{s}` (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("bound `{s}` does not fit in 64 bits"))
}

/// Rules from `ALLOC_TRACKER_RETAIN` and the file named by
/// `ALLOC_TRACKER_RETAIN_FILE`, in that order (empty when neither is set).
/// Every check reads them when it begins.
///
/// ```
/// use scope_alloc_tracker::leak::rules_from_env;
/// // Neither variable is set in this doc test.
/// assert!(rules_from_env().unwrap().rules.is_empty());
/// ```
///
/// # Errors
/// [`RetainRuleError`] for a bad line, an unreadable file or a variable
/// that is not UTF-8.
pub fn rules_from_env() -> Result<RuleSet, RetainRuleError> {
    let mut set = RuleSet::default();
    let whole = |origin: &str, problem: String| RetainRuleError {
        origin: origin.to_string(),
        line: 0,
        text: String::new(),
        problem,
    };
    match std::env::var(RETAIN_ENV) {
        Ok(text) => set.extend(parse(&text, RuleSource::Env, RETAIN_ENV)?),
        Err(std::env::VarError::NotPresent) => {}
        Err(e) => return Err(whole(RETAIN_ENV, e.to_string())),
    }
    match std::env::var(RETAIN_FILE_ENV) {
        Ok(path) if path.is_empty() => {}
        Ok(path) => {
            let origin = format!("{RETAIN_FILE_ENV}={path}");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| whole(&origin, format!("cannot read the file: {e}")))?;
            set.extend(parse(&text, RuleSource::File, &origin)?);
        }
        Err(std::env::VarError::NotPresent) => {}
        Err(e) => return Err(whole(RETAIN_FILE_ENV, e.to_string())),
    }
    Ok(set)
}

impl RuleSet {
    fn extend(&mut self, other: RuleSet) {
        self.rules.extend(other.rules);
        self.defaults_off.extend(other.defaults_off);
        self.all_defaults_off |= other.all_defaults_off;
    }
}

/// Whether a check applies the [`default_rules`](super::default_rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Defaults {
    /// Apply every default rule not turned off by name (the default).
    #[default]
    On,
    /// Apply none.
    Off,
}

/// Names of the default rules, in the order they apply.
pub const DEFAULT_NAMES: &[&str] = &[
    "tokio-park-thread",
    "tokio-blocking-pool-thread",
    "tracing-subscriber-thread-buffers",
    "std-backtrace-cache",
    "libtest-output-capture",
];

pub(crate) fn default_rule(
    name: &'static str,
    innermost: Option<&'static [&'static str]>,
    all: &'static [&'static [&'static str]],
    bound: u64,
) -> Retain {
    Retain {
        matcher: Matcher::Frames { innermost, all },
        bound,
        name: Some(name.to_string()),
        source: RuleSource::Default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_names_and_comments() {
        let set = Retain::parse(
            "# header\nsite:a::b <= 64MiB name=cache\n scope:db/cache/ <=4096 ; site:x<=1 K # c\nscope:test#3 <= 1\n-default:tokio-park-thread\n-defaults",
        )
        .unwrap();
        assert_eq!(set.rules.len(), 4);
        assert_eq!(set.rules[3].matcher, Matcher::ScopePath("test#3".into()));
        assert_eq!(set.rules[0].bound, 64 << 20);
        assert_eq!(set.rules[0].label(), "cache");
        assert_eq!(set.rules[1].matcher, Matcher::ScopePath("db/cache".into()));
        assert_eq!(set.rules[2].bound, 1024);
        assert_eq!(set.defaults_off, vec!["tokio-park-thread".to_string()]);
        assert!(set.all_defaults_off);
    }

    #[test]
    fn bad_lines_name_their_line_and_problem() {
        let e = Retain::parse("site:ok <= 1\nsite:a <= 12XB").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("unknown unit `XB`"), "{e}");
        let e = Retain::parse("leak:a <= 1").unwrap_err();
        assert!(e.problem.contains("starts with"), "{e}");
        let e = Retain::parse("site:a").unwrap_err();
        assert!(e.problem.contains("missing bound"), "{e}");
        let e = Retain::parse("-default:nope").unwrap_err();
        assert!(e.problem.contains("no default rule"), "{e}");
        let e = Retain::parse("site: <= 1").unwrap_err();
        assert!(e.problem.contains("empty pattern"), "{e}");
        let e = Retain::parse("site:a <= 99999999999999GiB").unwrap_err();
        assert!(e.problem.contains("64 bits"), "{e}");
    }
}
